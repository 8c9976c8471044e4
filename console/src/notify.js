// @ts-check
/** Notifications for new messages in conversations assigned to me: a short tone (WebAudio) and a
 * desktop notification when the browser allows it. */
export class Notifier {
  constructor() { /** @type {AudioContext | null} */ this.audio = null; }

  /** Called from a click: browsers allow audio and the permission prompt only after a gesture. */
  async enable() {
    this.audio = this.audio || new AudioContext();
    if ("Notification" in window && Notification.permission === "default") await Notification.requestPermission();
    this.beep();
  }

  beep() {
    const ctx = this.audio;
    if (!ctx || ctx.state !== "running") return;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.25);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.25);
  }

  /** @param {string} title @param {string} body */
  notify(title, body) {
    this.beep();
    if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
      new Notification(title, { body, tag: title });
    }
  }
}
