/** Thrown for invalid input to the ring: bad node ids, vnode counts, replica counts, tokens or ranges. */
export class RingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RingError";
  }
}
