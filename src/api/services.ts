// What the HTTP handlers are given: the store (to read), the core (to change), the container
// manager and the views.
import type { ContainerManager } from '../container/lifecycle.js';
import type { Engine } from '../core/engine.js';
import type { Images } from '../core/images.js';
import type { Store } from '../store/store.js';
import type { Views } from './views.js';

export interface Services {
  store: Store;
  engine: Engine;
  views: Views;
  containers: ContainerManager;
  images: Images;
}
