// Runs INSIDE the sandbox: read {code, inputs} on stdin, call main(inputs); result on stdout.
"use strict";
const fs = require("fs");
const out = (payload) => fs.writeSync(1, JSON.stringify(payload));
console.log = (...a) => process.stderr.write(a.join(" ") + "\n");
let request;
try {
  request = JSON.parse(fs.readFileSync(0, "utf8"));
  const main = new Function("require", "inputs", request.code + "\n;return typeof main === 'function' ? main : undefined;")(undefined, request.inputs);
  if (typeof main !== "function") throw new TypeError("the code must define function main(inputs)");
  Promise.resolve(main(request.inputs)).then((result) => {
    if (result === null || typeof result !== "object" || Array.isArray(result)) throw new TypeError("main() must return an object");
    out({ ok: true, result: JSON.parse(JSON.stringify(result)) });
  }).catch((e) => out({ ok: false, type: e && e.name, message: String(e && e.message) }));
} catch (e) {
  out({ ok: false, type: e && e.name, message: String(e && e.message) });
}
