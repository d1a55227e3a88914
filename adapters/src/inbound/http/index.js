"use strict";
// Strings come from the server in the page's language (a JSON data block);
// every value from the API is written with textContent, never as markup.
const T = JSON.parse(document.getElementById("strings").textContent);
const t = (key, vars = {}) => (T[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
const $ = (id) => document.getElementById(id);
const set = (id, value) => { $(id).textContent = value === undefined || value === null || value === "" ? t("js.none") : value; };
const text = $("text");
const maxBytes = Number(text.dataset.maxBytes);
const encoder = new TextEncoder();

// Bytes the text takes in the JSON DingTalk receives (quotes, backslashes and
// line breaks are escaped there), which is what the server counts.
const bytesOf = (value) => encoder.encode(JSON.stringify(value)).length - 2;

function signedOut(message) {
  $("status").textContent = message;
  $("status").className = "";
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
}

function signedIn(me) {
  $("status").textContent = t("js.signed_in");
  set("name", me.name);
  for (const key of ["corp_id", "union_id", "userid", "title"]) set(key, me[key]);
  set("email", me.org_email || me.email);
  set("dept_ids", (me.dept_ids || []).join(", "));
  const avatar = $("avatar");
  avatar.onerror = () => { avatar.hidden = true; };
  if (typeof me.avatar_url === "string" && me.avatar_url.startsWith("https://")) {
    avatar.src = me.avatar_url;
    avatar.hidden = false;
  } else {
    avatar.hidden = true;
  }
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
}

async function checkSession() {
  try {
    const res = await fetch("/api/me", { credentials: "same-origin" });
    if (res.status === 401) {
      signedOut($("signed-in").hidden ? t("js.signed_out") : t("js.session_ended"));
      return;
    }
    if (!res.ok) { signedOut(t("js.session_failed", { status: res.status })); return; }
    signedIn(await res.json());
  } catch (_) {
    signedOut(t("js.offline"));
  }
}

function updateCount() {
  const used = bytesOf(text.value);
  const over = used > maxBytes;
  $("count").textContent = over ? t("js.too_long", { used, max: maxBytes })
                                : t("js.count", { used, max: maxBytes, cjk: Math.floor(maxBytes / 3) });
  $("count").classList.toggle("over", over);
  $("send-button").disabled = over;
}

function result(message, kind, reference) {
  $("sent").textContent = message;
  $("sent").className = kind;
  $("reference").textContent = reference ? t("js.reference", { id: reference }) : "";
}

$("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (text.value.trim() === "") { result(t("js.empty"), "error"); return; }
  if (bytesOf(text.value) > maxBytes) { updateCount(); result(t("js.too_long", { used: bytesOf(text.value), max: maxBytes }), "error"); return; }
  result(t("js.sending"), "muted");
  $("send-button").disabled = true;
  try {
    const res = await fetch("/api/me/messages", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: text.value }),
    });
    const body = await res.json().catch(() => ({}));
    if (res.ok) { result(t("js.sent"), "ok", body.id); return; }
    if (res.status === 401) { result("", ""); signedOut(t("js.session_ended")); return; }
    const field = (body.fields && body.fields.text) || {};
    if (field.code === "required") result(t("js.empty"), "error");
    else if (field.code === "too_large" || field.code === "too_long" || res.status === 413) {
      result(t("js.too_long", { used: bytesOf(text.value), max: maxBytes }), "error");
    } else if (res.status === 503) result(t("js.unavailable"), "error");
    else result(t("js.send_failed", { code: body.code || res.status }), "error");
  } catch (_) {
    result(t("js.offline"), "error");
  } finally {
    updateCount();
  }
});

text.addEventListener("input", () => { result("", ""); updateCount(); });
// Coming back to the tab: the session may have ended elsewhere meanwhile.
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") checkSession(); });
updateCount();
checkSession();
