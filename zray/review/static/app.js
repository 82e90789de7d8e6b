// zray review: the page of one episode. No framework, no network beyond this server.
"use strict";

const token = document.querySelector('meta[name="zray-token"]').content;
const $ = (id) => document.getElementById(id);
let episode = null;
let sceneLang = null;
let logNext = 0;
let polling = false;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function clock(seconds) {
  if (typeof seconds !== "number") return "–";
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function preciseClock(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${(seconds - minutes * 60).toFixed(1).padStart(4, "0")}`;
}

function setAttr(node, name, value) {
  if (value === null || value === undefined) node.removeAttribute(name);
  else if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "X-Zray-Token": token, "Content-Type": "application/json" },
    cache: "no-store",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

async function act(path, body) {
  showError("");
  try {
    await api(path, { method: "POST", body: JSON.stringify(body || {}) });
    await refresh();
  } catch (error) {
    showError(error.message);
  }
}

// --- languages ------------------------------------------------------------------------------------

function approvalBadge(approval) {
  const labels = { approved: "approved", outdated: "approval outdated: rebuilt since", none: "not approved" };
  const who = approval.by ? ` (${approval.by}, ${approval.at})` : "";
  return el("span", { class: `badge ${approval.state}`, "data-approval": approval.state, text: labels[approval.state] + (approval.state === "none" ? "" : who) });
}

function languageCard(info) {
  let card = $(`lang-${info.lang}`);
  if (!card) {
    const video = el("video", { controls: true, preload: "metadata", "data-lang": info.lang });
    card = el("div", { class: "lang", id: `lang-${info.lang}`, "data-lang": info.lang },
      el("div", { class: "player" }, video),
      el("div", { class: "info" }));
    $("languages").append(card);
  }
  const video = card.querySelector("video");
  if (info.video && video.getAttribute("src") !== info.video) {
    video.querySelectorAll("track").forEach((t) => t.remove());
    if (info.vtt) video.append(el("track", { kind: "subtitles", srclang: info.lang, label: info.lang, src: info.vtt, default: true }));
    video.setAttribute("src", info.video);
  }
  const side = card.querySelector(".info");
  const published = info.published
    ? el("span", { class: "badge approved", text: `published: youtu.be/${info.published.video_id}` })
    : el("span", { class: "badge none", text: "not published" });
  const approve = el("button", { class: "primary", "data-action": "approve", "data-lang": info.lang, disabled: !info.finished || info.approval.state === "approved", onclick: () => act("/api/approve", { lang: info.lang }), text: "Approve" });
  const withdraw = el("button", { "data-action": "withdraw", "data-lang": info.lang, disabled: info.approval.state === "none", onclick: () => act("/api/withdraw", { lang: info.lang }), text: "Withdraw" });
  const thumbs = el("div", { class: "thumbs" });
  for (const variant of info.thumbnail.variants) {
    const chosen = variant.number === info.thumbnail.chosen;
    thumbs.append(el("figure", { class: chosen ? "chosen" : null, "data-variant": variant.number },
      el("a", { href: variant.url, target: "_blank", rel: "noopener" }, el("img", { src: variant.preview, alt: `${info.lang} thumbnail variant ${variant.number}`, loading: "lazy" })),
      el("figcaption", {},
        `v${variant.number}` + (variant.number === info.thumbnail.current ? " · official now" : "") + " ",
        chosen ? el("b", { text: "chosen" }) : el("button", { "data-action": "thumbnail", "data-lang": info.lang, "data-variant": variant.number, onclick: () => act("/api/thumbnail", { lang: info.lang, variant: variant.number }), text: "Make official" }))));
  }
  if (!info.thumbnail.variants.length && info.thumbnail.official) {
    thumbs.append(el("figure", {}, el("img", { src: info.thumbnail.official, alt: `${info.lang} thumbnail` }), el("figcaption", { text: "official (no text variants)" })));
  }
  const pending = info.thumbnail.current !== null && info.thumbnail.current !== info.thumbnail.chosen
    ? el("div", { class: "muted", text: `Variant ${info.thumbnail.chosen} chosen: Rebuild to make it the official thumbnail.` }) : null;
  let shorts = null;
  if (info.shorts.length) {
    shorts = el("div", {},
      el("div", { class: "row" }, el("b", { text: `Shorts (${info.shorts.length})` }), approvalBadge(info.shorts_approval),
        el("button", { "data-action": "approve-shorts", "data-lang": info.lang, disabled: info.shorts_approval.state === "approved", onclick: () => act("/api/approve", { lang: info.lang, shorts: true }), text: "Approve Shorts" }),
        el("button", { "data-action": "withdraw-shorts", "data-lang": info.lang, disabled: info.shorts_approval.state === "none", onclick: () => act("/api/withdraw", { lang: info.lang, shorts: true }), text: "Withdraw" })),
      el("div", { class: "shorts" }, ...info.shorts.map((s) => el("video", { controls: true, preload: "metadata", src: s.url, title: s.node }))));
  }
  side.replaceChildren(
    el("h3", { text: `${info.lang.toUpperCase()} · ${info.title}` }),
    el("div", { class: "row" }, el("span", { class: "muted", text: info.finished ? `duration ${clock(info.duration)}` : "no finished video" }), approvalBadge(info.approval), published),
    el("div", { class: "row" }, approve, withdraw,
      info.chapters ? el("a", { href: info.chapters, target: "_blank", rel: "noopener", text: "chapters" }) : null),
    el("div", { class: "muted", text: "Thumbnails" }), thumbs, ...[pending, shorts].filter(Boolean));
}

// --- scenes ---------------------------------------------------------------------------------------

function seek(lang, seconds) {
  const video = document.querySelector(`video[data-lang="${lang}"]`);
  if (!video) return;
  video.currentTime = seconds;
  video.scrollIntoView({ block: "nearest" });
}

function sceneCard(scene) {
  let card = document.querySelector(`.scene[data-scene="${scene.index}"]`);
  if (!card) {
    card = el("article", { class: "scene", "data-scene": scene.index },
      el("a", { target: "_blank", rel: "noopener" }, el("img", { alt: `scene ${scene.index + 1}`, loading: "lazy", decoding: "async" })),
      el("div", { class: "body" }));
    $("scenes").append(card);
  }
  const link = card.querySelector("a");
  setAttr(link, "href", scene.picture);
  const img = link.querySelector("img");
  setAttr(img, "src", scene.preview);
  const seedInput = el("input", { type: "number", min: 0, step: 1, value: scene.seed, "aria-label": "seed" });
  const seedRow = el("div", { class: "row seed" },
    el("button", { "data-action": "new-picture", onclick: () => act(`/api/scene/${scene.index}/seed`, {}), text: "New picture" }),
    seedInput,
    el("button", { "data-action": "set-seed", onclick: () => act(`/api/scene/${scene.index}/seed`, { seed: Number(seedInput.value) }), text: "Set seed" }),
    scene.seed_chosen ? el("button", { "data-action": "reset-seed", onclick: () => act(`/api/scene/${scene.index}/seed`, { reset: true }), text: "Reset" }) : null);
  // A scene of motion generate: its clip, re-rolled alone (the picture kept) or with a new picture.
  let clipRow = null;
  if (scene.clip) {
    const clipSeed = scene.clip.seed === null ? "from the picture's seed" : `seed ${scene.clip.seed}${scene.clip.seed_chosen ? ` (chosen by ${scene.clip.seed_chosen.by})` : ""}`;
    clipRow = el("div", { class: "row clip" },
      scene.clip.url ? el("a", { href: scene.clip.url, target: "_blank", rel: "noopener", text: "Clip" }) : el("span", { text: "Clip" }),
      el("span", { class: "muted", "data-role": "clip-seed", text: clipSeed }),
      el("button", { "data-action": "new-clip", onclick: () => act(`/api/scene/${scene.index}/clip_seed`, {}), text: "New clip" }),
      scene.clip.seed_chosen ? el("button", { "data-action": "reset-clip-seed", onclick: () => act(`/api/scene/${scene.index}/clip_seed`, { reset: true }), text: "Reset clip" }) : null);
  }
  const narration = scene.narration[sceneLang];
  let voice = null;
  if (narration) {
    let audio = card.querySelector("audio");
    if (!audio || audio.getAttribute("src") !== narration.audio) {
      audio = narration.audio ? el("audio", { controls: true, preload: "none", src: narration.audio, "data-lang": sceneLang, "data-seconds": narration.seconds }) : null;
    }
    const cues = el("ul", { class: "cues" }, ...narration.cues.map((cue) =>
      el("li", { onclick: () => seek(sceneLang, cue.start) }, el("time", { text: preciseClock(cue.start) }), cue.text)));
    voice = el("div", { class: "voice", "data-lang": sceneLang }, audio, el("div", { class: "text", text: narration.text }), cues);
  }
  card.querySelector(".body").replaceChildren(
    el("div", { class: "row" }, el("b", { text: `Scene ${scene.index + 1}` }), el("span", { class: "muted", text: `id ${scene.scene_id} · seed ${scene.seed}${scene.seed_chosen ? ` (chosen by ${scene.seed_chosen.by})` : ""}` })),
    el("div", { class: "prompt", text: scene.prompt }),
    ...[seedRow, clipRow, voice].filter(Boolean));
}

// --- the whole page -------------------------------------------------------------------------------

function render() {
  document.title = `${episode.code} ${episode.title} · zray review`;
  $("title").textContent = `${episode.code} · ${episode.title}`;
  $("folder").textContent = episode.folder;
  const select = $("scene-lang");
  const langs = episode.languages.map((l) => l.lang);
  if (!sceneLang || !langs.includes(sceneLang)) sceneLang = langs[0];
  if (select.options.length !== langs.length) {
    select.replaceChildren(...langs.map((l) => el("option", { value: l, text: l })));
  }
  select.value = sceneLang;
  for (const info of episode.languages) languageCard(info);
  for (const scene of episode.scenes) sceneCard(scene);
  document.querySelectorAll(".scene").forEach((card) => {
    if (Number(card.dataset.scene) >= episode.scenes.length) card.remove();
  });
  if (!$("report").getAttribute("src")) $("report").setAttribute("src", episode.report);
  if (!document.body.dataset.loaded) performance.mark("zray-rendered");  // benchmarks/review_page.py reads it
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

async function refresh() {
  try {
    episode = await api("/api/episode");
    render();
    if (!polling) setRebuildState(episode.rebuild);
    if (episode.rebuild.running && !polling) follow();
  } catch (error) {
    showError(error.message);
  }
}

function setRebuildState(status) {
  const state = status.running ? "running" : status.exit_code === null ? "idle" : status.exit_code === 0 ? "done" : "failed";
  document.body.dataset.rebuild = state;
  $("rebuild").disabled = status.running;
  $("rebuild-state").textContent = {
    running: "rebuilding…",
    idle: "",
    done: "rebuild finished",
    failed: `rebuild failed (exit ${status.exit_code}): see its output`,
  }[state];
}

async function follow() {
  polling = true;
  $("rebuild-log-box").hidden = false;
  try {
    for (;;) {
      const status = await api(`/api/rebuild?since=${logNext}`);
      if (status.lines.length) {
        $("rebuild-log").textContent += status.lines.join("\n") + "\n";
        $("rebuild-log").scrollTop = $("rebuild-log").scrollHeight;
      }
      logNext = status.next;
      setRebuildState(status);
      if (!status.running) break;
      await new Promise((resolve) => setTimeout(resolve, 600));
    }
  } catch (error) {
    showError(error.message);
  } finally {
    polling = false;
  }
  await refresh();
  $("report").setAttribute("src", `${episode.report}?t=${Date.now()}`);
}

async function rebuild() {
  showError("");
  $("rebuild-log").textContent = "";
  logNext = 0;
  try {
    const status = await api("/api/rebuild", { method: "POST" });
    setRebuildState(status);
    $("rebuild-log-box").open = true;
    follow();
  } catch (error) {
    showError(error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("rebuild").addEventListener("click", rebuild);
  $("scene-lang").addEventListener("change", (event) => {
    sceneLang = event.target.value;
    render();
  });
  refresh();
});
