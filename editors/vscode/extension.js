// The VS Code client: starts `sagalang lsp` over stdio for every .saga file.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("sagalang");
  const command = config.get("server.command", "sagalang");
  const args = config.get("server.args", ["lsp"]);
  const run = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient(
    "sagalang",
    "sagalang",
    { run, debug: run },
    {
      documentSelector: [
        { scheme: "file", language: "saga" },
        { scheme: "untitled", language: "saga" },
      ],
      initializationOptions: { debounce_ms: config.get("server.debounceMs", 50) },
    },
  );
  context.subscriptions.push(client);
  // A missing executable is reported once, with where to set it, rather than failing silently.
  return client.start().catch((err) => {
    vscode.window.showErrorMessage(
      `sagalang: cannot start "${command} ${args.join(" ")}" (${err.message}). ` +
        "Install sagalang with the lsp extra (pip install 'sagalang[lsp]') or set sagalang.server.command.",
    );
  });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
