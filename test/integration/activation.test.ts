// Activation and the command table, in a real extension host.
import * as assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import * as vscode from 'vscode';
import { attend } from './helpers';

interface Manifest {
  contributes: {
    commands: { command: string; title: string; category?: string }[];
    menus?: Record<string, { command: string }[]>;
    keybindings?: { command: string }[];
  };
  activationEvents?: string[];
}

describe('activation', () => {
  it('activates and exports its API', async () => {
    const { ext, api } = await attend();
    assert.equal(ext.isActive, true);
    assert.equal(typeof api.onDidAsk, 'function', 'exports.onDidAsk is an event');
  });

  it('registers every command package.json contributes, and no other attend.* command', async () => {
    const { ext } = await attend();
    const manifest = ext.packageJSON as Manifest;
    const contributed = manifest.contributes.commands.map((c) => c.command).sort();
    const registered = (await vscode.commands.getCommands(true)).filter((c) => c.startsWith('attend.')).sort();
    assert.ok(contributed.length >= 10, `${contributed.length} contributed commands`);
    assert.deepEqual(registered, contributed);
    for (const c of manifest.contributes.commands) assert.equal(c.category, 'Attend', `${c.command} is in the Attend category`);
  });

  it('menus and keybindings name only registered commands', async () => {
    const { ext } = await attend();
    const manifest = ext.packageJSON as Manifest;
    const registered = new Set((await vscode.commands.getCommands(true)).filter((c) => c.startsWith('attend.')));
    const named = [
      ...Object.values(manifest.contributes.menus ?? {}).flatMap((items) => items.map((i) => i.command)),
      ...(manifest.contributes.keybindings ?? []).map((k) => k.command),
    ];
    assert.ok(named.length > 0);
    for (const c of named) assert.ok(registered.has(c), `${c} is registered`);
  });

  it('activates lazily: no startup activation event', async () => {
    const { ext } = await attend();
    const events = (ext.packageJSON as Manifest).activationEvents ?? [];
    assert.ok(!events.includes('*') && !events.includes('onStartupFinished'), `activationEvents ${JSON.stringify(events)}`);
  });
});
