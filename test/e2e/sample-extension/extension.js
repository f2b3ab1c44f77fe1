// Throwaway sample extension for the code-server harness (test/e2e/harness.ts). Plain JS, no build.
// - "Sample: Hello" (sample.hello) sets a status bar item and opens a webview with a known string.
// - A hover provider for plain text answers "Sample hover: <word>".
// - The test-only entry: when ATTEND_TEST_ENTRY names a JS file, it is required after activation and
//   its run() executes a mocha suite in this extension host (see test/e2e/in-host/entry.ts). The real
//   extension does the same through extension/testEntry.ts.
'use strict';
const vscode = require('vscode');

const STATUS_TEXT = 'Sample: ready';
const WEBVIEW_TEXT = 'Hello from the sample webview';

/** @param {vscode.ExtensionContext} context */
function activate(context) {
  const status = vscode.window.createStatusBarItem('sample.status', vscode.StatusBarAlignment.Left, 100);
  status.name = 'Sample Status';
  status.text = 'Sample: idle';
  status.show();
  context.subscriptions.push(status);

  context.subscriptions.push(
    vscode.commands.registerCommand('sample.hello', () => {
      status.text = STATUS_TEXT;
      const panel = vscode.window.createWebviewPanel('sample.panel', 'Sample Panel', vscode.ViewColumn.Beside, {
        enableScripts: true,
      });
      panel.webview.html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline';">
<title>Sample</title></head>
<body><h1 id="greeting">${WEBVIEW_TEXT}</h1><p id="detail">webview body</p></body></html>`;
      return STATUS_TEXT;
    }),
  );

  context.subscriptions.push(
    vscode.languages.registerHoverProvider(
      { language: 'plaintext' },
      {
        provideHover(document, position) {
          const range = document.getWordRangeAtPosition(position);
          if (!range) return undefined;
          return new vscode.Hover(`Sample hover: ${document.getText(range)}`, range);
        },
      },
    ),
  );

  maybeRunTestEntry(context);
  return { statusText: () => status.text };
}

// Same protocol as extension/testEntry.ts (kept inline so this sample needs no build).
function maybeRunTestEntry(context) {
  const entry = process.env.ATTEND_TEST_ENTRY;
  if (!entry) return false;
  const resultsFile = process.env.ATTEND_TEST_RESULTS;
  setImmediate(async () => {
    try {
      await require(entry).run({ vscode, context, resultsFile });
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      console.error(`[attend-test-entry] ${entry}: ${error}`);
      if (resultsFile) {
        const failure = { title: 'ATTEND_TEST_ENTRY', fullTitle: `loading ${entry}`, error };
        const results = { passed: 0, failed: 1, pending: 0, total: 1, failures: [failure], tests: [] };
        require('fs').writeFileSync(resultsFile, JSON.stringify(results, null, 2));
      }
    }
  });
  return true;
}

function deactivate() {}

module.exports = { activate, deactivate };
