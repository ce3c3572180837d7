// A small MSE player of one stream's HLS VOD playlist (RFC 8216) of CMAF
// fMP4 segments (ISO/IEC 23000-19), placed on a wall clock: media time t of
// the <video> is origin + t seconds, where origin is the start of the exam
// window. Each segment's wall-clock start comes from EXT-X-PROGRAM-DATE-TIME
// plus the EXTINF durations before it; its media timestamps are moved there
// with SourceBuffer.timestampOffset, computed from the segment's tfdt.
'use strict';

// parsePlaylist returns the segments of a media playlist, each with its
// wall-clock start and end (ms), its URI and its init segment's URI.
function parsePlaylist(text, base) {
  const segs = [];
  let wall = null, init = null, dur = 0, disc = false;
  const origin = new URL(base).origin;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) wall = Date.parse(line.slice(25));
    else if (line.startsWith('#EXT-X-MAP:')) { const m = /URI="([^"]+)"/.exec(line); if (m) init = new URL(m[1], base).href; }
    else if (line.startsWith('#EXTINF:')) dur = parseFloat(line.slice(8));
    else if (line === '#EXT-X-DISCONTINUITY') disc = true;
    else if (!line.startsWith('#')) {
      // The registry's URIs are absolute paths: no URL parsing for the
      // thousands of a long exam's playlist.
      const uri = line.startsWith('/') && !line.startsWith('//') ? origin + line : new URL(line, base).href;
      segs.push({uri, init, start: wall, end: wall + dur * 1000, dur, disc});
      wall += dur * 1000; disc = false;
    }
  }
  return segs;
}

// objectPath is a media URL without its query (the signature).
const objectPath = (uri) => (uri || '').split('?')[0];

// boxes lists the ISO BMFF boxes of view between start and end.
function boxes(v, start, end) {
  const out = [];
  let p = start;
  while (p + 8 <= end) {
    let size = v.getUint32(p), hdr = 8;
    const type = String.fromCharCode(v.getUint8(p + 4), v.getUint8(p + 5), v.getUint8(p + 6), v.getUint8(p + 7));
    if (size === 1) { size = Number(v.getBigUint64(p + 8)); hdr = 16; } else if (size === 0) size = end - p;
    if (size < hdr || p + size > end) break;
    out.push({type, start: p, body: p + hdr, end: p + size});
    p += size;
  }
  return out;
}
function child(v, box, type) { return boxes(v, box.body, box.end).find((b) => b.type === type); }
const hex2 = (n) => n.toString(16).padStart(2, '0');

// parseInit returns the codecs (RFC 6381) and each track's timescale of an
// init segment.
function parseInit(buf) {
  const v = new DataView(buf);
  const moov = boxes(v, 0, v.byteLength).find((b) => b.type === 'moov');
  const codecs = [], timescales = {};
  let videoTrack = 0;
  let video = false;
  if (!moov) return {codecs, timescales, video, videoTrack};
  for (const trak of boxes(v, moov.body, moov.end).filter((b) => b.type === 'trak')) {
    const tkhd = child(v, trak, 'tkhd'), mdia = child(v, trak, 'mdia');
    if (!tkhd || !mdia) continue;
    const id = v.getUint32(tkhd.body + (v.getUint8(tkhd.body) === 1 ? 20 : 12));
    const mdhd = child(v, mdia, 'mdhd');
    timescales[id] = v.getUint32(mdhd.body + (v.getUint8(mdhd.body) === 1 ? 20 : 12));
    const stbl = child(v, child(v, mdia, 'minf'), 'stbl');
    const stsd = child(v, stbl, 'stsd');
    const entry = boxes(v, stsd.body + 8, stsd.end)[0];
    if (!entry) continue;
    const visual = entry.body + 78;
    if (['avc1', 'avc3', 'vp09', 'av01', 'hvc1', 'hev1'].includes(entry.type) && !videoTrack) videoTrack = id;
    switch (entry.type) {
      case 'avc1': case 'avc3': {
        const c = boxes(v, visual, entry.end).find((b) => b.type === 'avcC');
        codecs.push(entry.type + '.' + hex2(v.getUint8(c.body + 1)) + hex2(v.getUint8(c.body + 2)) + hex2(v.getUint8(c.body + 3)));
        video = true; break;
      }
      case 'vp09': {
        const c = boxes(v, visual, entry.end).find((b) => b.type === 'vpcC');
        const pad = (n) => String(n).padStart(2, '0');
        codecs.push('vp09.' + pad(v.getUint8(c.body + 4)) + '.' + pad(v.getUint8(c.body + 5)) + '.' + pad(v.getUint8(c.body + 6) >> 4));
        video = true; break;
      }
      case 'av01': {
        const c = boxes(v, visual, entry.end).find((b) => b.type === 'av1C');
        const b1 = v.getUint8(c.body + 1), b2 = v.getUint8(c.body + 2);
        const bits = (b2 & 0x40) ? ((b2 & 0x20) ? 12 : 10) : 8;
        codecs.push('av01.' + (b1 >> 5) + '.' + String(b1 & 31).padStart(2, '0') + ((b2 & 0x80) ? 'H' : 'M') + '.' + String(bits).padStart(2, '0'));
        video = true; break;
      }
      case 'hvc1': case 'hev1': codecs.push(entry.type + '.1.6.L93.B0'); video = true; break;
      case 'mp4a': codecs.push('mp4a.40.2'); break;
      case 'Opus': codecs.push('opus'); break;
      default: codecs.push(entry.type);
    }
  }
  return {codecs, timescales, video, videoTrack};
}

// firstDecodeTime returns the tfdt of a media segment's video track (or
// its first track) in seconds: audio follows the video's offset.
function firstDecodeTime(buf, timescales, track) {
  const v = new DataView(buf);
  for (const moof of boxes(v, 0, v.byteLength).filter((b) => b.type === 'moof')) {
    for (const traf of boxes(v, moof.body, moof.end).filter((b) => b.type === 'traf')) {
      const tfhd = child(v, traf, 'tfhd'), tfdt = child(v, traf, 'tfdt');
      if (!tfhd || !tfdt) continue;
      const id = v.getUint32(tfhd.body + 4);
      if (track && id !== track) continue;
      const t = v.getUint8(tfdt.body) === 1 ? Number(v.getBigUint64(tfdt.body + 4)) : v.getUint32(tfdt.body + 4);
      return t / (timescales[id] || 90000);
    }
  }
  return 0;
}

// Player plays one stream's playlist in a <video> on the clock of origin
// (ms). It loads the segments around the time it is told to show.
class Player {
  constructor(video, origin, duration) {
    this.video = video; this.origin = origin; this.duration = duration;
    // loaded: the segments appended, by wall-clock start → end, so that
    // they stay known when the playlist is replaced by a longer one.
    this.segs = []; this.inits = new Map(); this.loaded = new Map();
    this.target = 0; this.generation = 0; this.error = '';
  }

  // load (re)starts the player on a playlist's segments, or on a promise
  // of them: the media source opens while the playlist is on its way.
  async load(segs) {
    const gen = ++this.generation;
    this.segs = []; this.loaded = new Map(); this.lastInit = null; this.sb = null; this.mime = null;
    this.ms = new MediaSource();
    const opened = new Promise((r) => this.ms.addEventListener('sourceopen', r, {once: true}));
    if (this.video.src) URL.revokeObjectURL(this.video.src);
    this.video.src = URL.createObjectURL(this.ms);
    const [list] = await Promise.all([segs, opened]);
    if (gen !== this.generation) return;
    this.segs = list;
    this.ms.duration = this.duration;
    this.run(gen);
  }

  // update replaces the playlist's segments with a longer list of the
  // same stream (the whole range after the few around the clock), keeping
  // what is appended.
  update(segs) { this.segs = segs; if (this.wake) this.wake(); }

  // covered reports whether the stream has footage at media time t.
  covered(t) {
    const w = this.origin + t * 1000;
    return this.segs.some((s) => s.start <= w && w < s.end);
  }

  // seek tells the loader where playback is now.
  seek(t) { this.target = t; if (this.wake) this.wake(); }

  async fetchBuf(uri) {
    const resp = await fetch(uri);
    if (!resp.ok) throw new Error(uri + ': ' + resp.status);
    return resp.arrayBuffer();
  }

  append(buf) {
    return new Promise((resolve, reject) => {
      const done = () => { this.sb.removeEventListener('error', fail); resolve(); };
      const fail = () => { this.sb.removeEventListener('updateend', done); reject(new Error('append failed')); };
      this.sb.addEventListener('updateend', done, {once: true});
      this.sb.addEventListener('error', fail, {once: true});
      this.sb.appendBuffer(buf);
    });
  }

  remove(from, to) {
    return new Promise((resolve) => { this.sb.addEventListener('updateend', resolve, {once: true}); this.sb.remove(from, to); });
  }

  // init returns the parsed init segment at uri, fetched once: by its
  // path, since two playlists sign the same object's URL differently.
  async init(uri) {
    const key = objectPath(uri);
    let i = this.inits.get(key);
    if (!i) { const buf = await this.fetchBuf(uri); i = Object.assign(parseInit(buf), {buf}); this.inits.set(key, i); }
    return i;
  }

  // run appends, in order, the segments from the one playing now to 40 s
  // ahead, and drops what is more than 60 s behind.
  async run(gen) {
    while (gen === this.generation) {
      const now = this.origin + this.target * 1000;
      const next = this.segs.findIndex((s) => !this.loaded.has(s.start) && s.end > now && s.start < now + 40000);
      if (next < 0) {
        await new Promise((r) => { this.wake = r; setTimeout(r, 500); });
        continue;
      }
      const s = this.segs[next];
      try {
        const [init, buf] = await Promise.all([this.init(s.init), this.fetchBuf(s.uri)]);
        if (gen !== this.generation) return;
        const mime = 'video/mp4; codecs="' + init.codecs.join(',') + '"';
        if (!this.sb) { this.sb = this.ms.addSourceBuffer(mime); this.mime = mime; }
        else if (mime !== this.mime && this.sb.changeType) { this.sb.changeType(mime); this.mime = mime; }
        if (this.lastInit !== objectPath(s.init)) { await this.append(init.buf); this.lastInit = objectPath(s.init); }
        // Move the segment's own timestamps (continuous tfdt) to its
        // place on the wall clock.
        this.sb.timestampOffset = (s.start - this.origin) / 1000 - firstDecodeTime(buf, init.timescales, init.videoTrack);
        try { await this.append(buf); }
        catch (e) {
          // QuotaExceeded: free what is behind and try once more.
          await this.remove(0, Math.max(0, this.target - 10));
          this.forget(this.target - 10);
          await this.append(buf);
        }
        this.loaded.set(s.start, s.end);
        if (this.target > 90) { await this.remove(0, this.target - 60); this.forget(this.target - 60); }
      } catch (e) {
        this.error = e.message;
        this.loaded.set(s.start, s.end);
      }
    }
  }

  forget(before) {
    const w = this.origin + before * 1000;
    for (const [start, end] of [...this.loaded]) if (end <= w) this.loaded.delete(start);
  }

  // ready reports whether the video can play at media time t now.
  ready(t) {
    const b = this.video.buffered;
    for (let i = 0; i < b.length; i++) if (b.start(i) <= t + 0.05 && t + 0.3 < b.end(i)) return true;
    return false;
  }
}
