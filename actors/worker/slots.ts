/** A count of free places (jobs a worker, or one login, may run at once); taken and given back without waiting. */
export class Slots {
  private free: number;

  constructor(size: number) {
    this.free = size;
  }

  /** Takes a slot if one is free now. */
  tryAcquire(): boolean {
    if (this.free === 0) return false;
    this.free--;
    return true;
  }

  get available(): number {
    return this.free;
  }

  release(): void {
    this.free++;
  }
}
