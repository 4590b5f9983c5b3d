// The dashboard's stylesheet and its one small script, served from the dashboard's own path so
// that the Content-Security-Policy can forbid every inline style and script.

export const DASHBOARD_CSS = `
:root{--ink:#1d2a33;--muted:#5b6b76;--line:#dfe5ea;--bg:#f4f6f8;--card:#fff;--accent:#0b7a55;--danger:#b3261e;--warn:#9a6700}
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,sans-serif;color:var(--ink);background:var(--bg);font-size:15px}
a{color:var(--accent)}
header.top{display:flex;align-items:center;gap:1.5rem;background:#12303f;color:#fff;padding:.6rem 1.5rem}
header.top .brand{font-weight:700;font-size:1.1rem;letter-spacing:.02em}
header.top nav{display:flex;gap:.2rem;flex-wrap:wrap;flex:1}
header.top nav a{color:#cfe3ec;text-decoration:none;padding:.35rem .7rem;border-radius:6px}
header.top nav a.current,header.top nav a:hover{background:#1f4a5e;color:#fff}
header.top .who{display:flex;align-items:center;gap:.6rem;font-size:.9rem;color:#cfe3ec}
header.top .who button{background:transparent;border:1px solid #6f93a3;color:#fff;padding:.25rem .7rem}
main{max-width:72rem;margin:1.5rem auto;padding:0 1.5rem}
h1{font-size:1.4rem;margin:0 0 1rem}
h2{font-size:1.1rem;margin:1.5rem 0 .6rem}
section.card,.card{background:var(--card);border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.1);padding:1rem 1.25rem;margin-bottom:1.25rem}
.card h2:first-child{margin-top:0}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(11rem,1fr));gap:.75rem}
.fact{background:var(--card);border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.1);padding:.8rem 1rem}
.fact .label{color:var(--muted);font-size:.8rem;text-transform:uppercase;letter-spacing:.04em}
.fact .value{font-size:1.35rem;font-weight:600;margin-top:.2rem;word-break:break-word}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(30rem,1fr));gap:1rem}
figure.chart{margin:0;background:var(--card);border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.1);padding:.8rem 1rem}
figure.chart figcaption{font-weight:600;margin-bottom:.4rem;display:flex;justify-content:space-between;flex-wrap:wrap;gap:.5rem}
figure.chart .legend{font-weight:400;font-size:.85rem;color:var(--muted)}
figure.chart svg{width:100%;height:auto;display:block}
svg .grid{stroke:#e6ebef;stroke-width:1}
svg .axis{fill:#6b7b86;font-size:11px}
svg .empty{fill:#8a99a3;font-size:13px}
svg .line{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
svg circle.line{stroke-width:3}
svg .dashed{stroke-dasharray:5 4}
.s1{stroke:#0b7a55;color:#0b7a55}
.s2{stroke:#2f6fbf;color:#2f6fbf}
.s3{stroke:#b5651d;color:#b5651d}
.key::before{content:"";display:inline-block;width:.8rem;height:.2rem;background:currentColor;vertical-align:middle;margin:0 .3rem 0 .6rem;border-radius:2px}
table{width:100%;border-collapse:collapse;background:var(--card)}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid var(--line);vertical-align:middle}
th{font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td code,.mono{font-family:ui-monospace,monospace;font-size:.88rem;overflow-wrap:anywhere}
td.when{white-space:nowrap}
.badge{display:inline-block;white-space:nowrap;padding:.05rem .5rem;border-radius:999px;font-size:.8rem;background:#e7eef2;color:#33505f}
.badge.ok{background:#dff3ea;color:#0b5a3f}
.badge.bad{background:#fde4e2;color:var(--danger)}
.badge.warn{background:#fff1cc;color:var(--warn)}
form.inline{display:inline-flex;gap:.4rem;align-items:center;margin:0}
form.row{display:flex;gap:.6rem;flex-wrap:wrap;align-items:flex-end}
form.row label{display:flex;flex-direction:column;font-size:.8rem;color:var(--muted);gap:.2rem}
input[type=text],input[type=password],input[type=search]{padding:.4rem .55rem;font-size:.95rem;border:1px solid #b8c4cc;border-radius:6px;min-width:8rem;width:11rem}
button{white-space:nowrap;background:var(--accent);color:#fff;border:0;border-radius:6px;padding:.45rem .9rem;font-size:.9rem;cursor:pointer}
button.danger{background:var(--danger)}
button.quiet{background:#e7eef2;color:var(--ink)}
.flash{padding:.6rem 1rem;border-radius:8px;margin-bottom:1rem}
.flash.ok{background:#dff3ea;color:#0b5a3f}
.flash.error{background:#fde4e2;color:#8a1c1c}
.muted{color:var(--muted)}
.login{max-width:24rem;margin:4rem auto}
.login h1{text-align:center}
.login form label{display:block;margin:.8rem 0 .2rem;font-weight:600}
.login form input{width:100%}
.login form button{width:100%;margin-top:1.2rem;padding:.65rem}
svg.meter{width:10rem;height:.55rem;display:inline-block;vertical-align:middle;margin-left:.5rem}
svg.meter .track{fill:#e7eef2}
svg.meter .used{fill:var(--accent)}
svg.meter .used.warn{fill:var(--warn)}
`;

/** Destructive forms ask first; the overview's charts follow the samples as they are taken. */
export const DASHBOARD_JS = `'use strict';
document.addEventListener('submit', function (event) {
  var question = event.target.getAttribute('data-confirm');
  if (question && !window.confirm(question)) event.preventDefault();
});
var charts = document.getElementById('charts');
if (charts) {
  var every = Math.max(2000, Number(charts.getAttribute('data-refresh')) * 1000);
  setInterval(function () {
    fetch(charts.getAttribute('data-src'), { credentials: 'same-origin' }).then(function (response) {
      if (response.status === 401) { window.location.reload(); return undefined; }
      return response.ok ? response.text() : undefined;
    }).then(function (html) {
      if (html !== undefined) charts.innerHTML = html;
    }).catch(function () {});
  }, every);
}
`;
