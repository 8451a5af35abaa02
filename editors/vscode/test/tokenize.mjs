// Tokenize .saga files with the extension's TextMate grammar, as VS Code does (vscode-textmate + oniguruma).
// Usage: node tokenize.mjs FILE...   One JSON line per file: {"file", "lines": [[[start, end, [scopes]], ...], ...]}
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const textmate = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const wasm = readFileSync(join(dirname(require.resolve("vscode-oniguruma")), "onig.wasm")).buffer;
await oniguruma.loadWASM(wasm);
const registry = new textmate.Registry({
  onigLib: Promise.resolve({
    createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
    createOnigString: (s) => new oniguruma.OnigString(s),
  }),
  loadGrammar: async (scopeName) => {
    if (scopeName !== "source.saga") return null;
    const path = join(here, "..", "syntaxes", "saga.tmLanguage.json");
    return textmate.parseRawGrammar(readFileSync(path, "utf8"), path);
  },
});
const grammar = await registry.loadGrammar("source.saga");
for (const file of process.argv.slice(2)) {
  let state = textmate.INITIAL;
  const lines = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const result = grammar.tokenizeLine(line, state);
    lines.push(result.tokens.map((t) => [t.startIndex, Math.min(t.endIndex, line.length), t.scopes]));
    state = result.ruleStack;
  }
  process.stdout.write(JSON.stringify({ file, lines }) + "\n");
}
