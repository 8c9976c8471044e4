// @ts-check
/**
 * A virtualised list with a fixed row height: only the rows in view (plus a few) exist in the
 * DOM, recycled as the list scrolls, so 10,000 rows cost what 20 do.
 */
export class VirtualList {
  /**
   * @param {HTMLElement} viewport  the scrolling element
   * @param {number} rowHeight
   * @param {(el: HTMLElement, item: any, index: number) => void} renderRow
   * @param {() => void} [onNearEnd]  called when the end of the loaded rows comes into view
   */
  constructor(viewport, rowHeight, renderRow, onNearEnd) {
    this.viewport = viewport;
    this.rowHeight = rowHeight;
    this.renderRow = renderRow;
    this.onNearEnd = onNearEnd || (() => {});
    /** @type {any[]} */
    this.items = [];
    this.spacer = document.createElement("div");
    this.spacer.className = "vlist-spacer";
    this.spacer.setAttribute("role", "presentation");
    this.viewport.append(this.spacer);
    /** @type {HTMLElement[]} */
    this.pool = [];
    this.pending = false;
    this.viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.viewport);
  }

  /** @param {any[]} items */
  setItems(items) { this.items = items; this.schedule(); }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.render(); });
  }

  /** Render now (used where a paint must follow at once). */
  render() {
    const n = this.items.length;
    this.spacer.style.height = `${n * this.rowHeight}px`;
    const top = this.viewport.scrollTop;
    const height = this.viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - 4);
    const last = Math.min(n, Math.ceil((top + height) / this.rowHeight) + 4);
    const count = Math.max(0, last - first);
    while (this.pool.length < count) {
      const el = document.createElement("div");
      el.className = "vrow";
      el.setAttribute("role", "option");
      this.spacer.append(el);
      this.pool.push(el);
    }
    for (let i = 0; i < this.pool.length; i++) {
      const el = this.pool[i];
      if (i >= count) { el.hidden = true; el.dataset.id = ""; continue; }
      const index = first + i;
      el.hidden = false;
      el.style.transform = `translateY(${index * this.rowHeight}px)`;
      el.setAttribute("aria-posinset", String(index + 1));
      el.setAttribute("aria-setsize", String(n));
      this.renderRow(el, this.items[index], index);
    }
    if (n && last >= n - 10) this.onNearEnd();
  }

  /** @param {number} index */
  scrollTo(index) {
    const y = index * this.rowHeight;
    const v = this.viewport;
    if (y < v.scrollTop) v.scrollTop = y;
    else if (y + this.rowHeight > v.scrollTop + v.clientHeight) v.scrollTop = y + this.rowHeight - v.clientHeight;
    this.render();
  }
}
