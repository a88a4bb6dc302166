// The portal's NIK search: asks the JSON endpoint and shows every field of the answer.
// It shows whatever the answer holds, so what the gateway removed is simply not there.
"use strict";

// NIK and No KK are 16-digit numbers above 2^53: keep the digits as sent, not as a double.
function parseExact(text) {
  return JSON.parse(text, function (key, value, context) {
    if (typeof value === "number" && context && typeof context.source === "string") {
      return context.source;
    }
    return value;
  });
}

function show(message) {
  document.getElementById("pesan").textContent = message;
}

function render(record) {
  const body = document.querySelector("#hasil tbody");
  body.replaceChildren();
  for (const [key, value] of Object.entries(record)) {
    const row = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = key;
    const td = document.createElement("td");
    td.textContent = value === null ? "" : String(value);
    row.append(th, td);
    body.append(row);
  }
}

async function search(event) {
  event.preventDefault();
  const nik = document.getElementById("nik").value.trim();
  show("Mencari…");
  let answer;
  try {
    const response = await fetch("api/cari", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ nik: nik }),
      credentials: "same-origin",
    });
    answer = parseExact(await response.text());
  } catch (e) {
    show("Pencarian gagal: " + e);
    return;
  }
  if (answer.quotaLimiter !== undefined) {
    document.getElementById("kuota").textContent =
      "Sisa kuota hari ini: " + answer.quotaLimiter;
  }
  const record = (answer.content || [])[0] || {};
  if (record.RESPON !== undefined) {
    render({});
    show(record.RESPON + (record.RESPONSE_DESC ? " — " + record.RESPONSE_DESC : ""));
    return;
  }
  render(record);
  show("");
  for (const input of document.querySelectorAll(".nik-terpilih")) {
    input.value = nik;
  }
}

document.addEventListener("DOMContentLoaded", function () {
  document.getElementById("cari").addEventListener("submit", search);
});
