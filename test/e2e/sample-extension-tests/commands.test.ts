// Runs INSIDE the extension host of code-server (via ATTEND_TEST_ENTRY), against the sample extension.
// Proves the in-host test entry: node out/test/e2e/run-in-code-server.js --sample
import * as assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import * as vscode from 'vscode';

describe('sample extension, in the extension host', () => {
  it('sees the real vscode API', () => {
    assert.match(vscode.version, /^1\.\d+\.\d+/);
    assert.ok(vscode.workspace.workspaceFolders?.length, 'a workspace folder is open');
  });

  it('has the sample command registered', async () => {
    const commands = await vscode.commands.getCommands(true);
    assert.ok(commands.includes('sample.hello'), 'sample.hello is registered');
  });

  it('runs the sample command', async () => {
    const result = await vscode.commands.executeCommand<string>('sample.hello');
    assert.equal(result, 'Sample: ready');
  });

  it('has the sample extension active', () => {
    const ext = vscode.extensions.getExtension('attend-test.sample');
    assert.ok(ext, 'extension attend-test.sample is installed');
    assert.equal(ext.isActive, true);
  });

  if (process.env.SAMPLE_TEST_FAIL === '1') {
    it('fails on purpose (SAMPLE_TEST_FAIL=1)', () => {
      assert.equal(1 + 1, 3);
    });
  }
});
