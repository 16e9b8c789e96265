// What the HTTP handlers are given: the store, the engine, the views and the container manager.
import type { ContainerManager } from '../container/manager.js';
import type { Engine } from '../core/engine.js';
import type { Store } from '../store/store.js';
import type { Views } from './views.js';

export interface Services {
  store: Store;
  engine: Engine;
  views: Views;
  containers: ContainerManager;
}
