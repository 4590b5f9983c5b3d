// @peculiar/x509 wires its algorithms with tsyringe, which refuses to load unless a Reflect
// metadata API exists (its README asks for `import "reflect-metadata"`). That package is not a
// dependency of ours, so this module installs the few functions tsyringe calls — define/get
// metadata on a class, following the prototype chain — when nothing better is present.
// It must be imported before '@peculiar/x509'. Replace with `import 'reflect-metadata'` if that
// package is ever added.
type Key = unknown;
type Property = string | symbol | undefined;

const store = new WeakMap<object, Map<Property, Map<Key, unknown>>>();

function metadataMap(target: object, property: Property, create: boolean): Map<Key, unknown> | undefined {
  let byProperty = store.get(target);
  if (!byProperty) {
    if (!create) return undefined;
    byProperty = new Map();
    store.set(target, byProperty);
  }
  let map = byProperty.get(property);
  if (!map && create) {
    map = new Map();
    byProperty.set(property, map);
  }
  return map;
}

const api = {
  defineMetadata(key: Key, value: unknown, target: object, property?: Property): void {
    metadataMap(target, property, true)!.set(key, value);
  },
  getOwnMetadata(key: Key, target: object, property?: Property): unknown {
    return metadataMap(target, property, false)?.get(key);
  },
  getMetadata(key: Key, target: object, property?: Property): unknown {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
      const map = metadataMap(t, property, false);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  },
  metadata(key: Key, value: unknown) {
    return (target: object, property?: Property): void => api.defineMetadata(key, value, target, property);
  },
};

const reflect = Reflect as unknown as Record<string, unknown>;
if (typeof reflect.getMetadata !== 'function') {
  for (const [name, fn] of Object.entries(api)) reflect[name] = fn;
}
