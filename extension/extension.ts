// Entry point. activate() only wires: one context object, the command table, the meter, the panel serializer.
// Nothing heavy happens here; the engine worker starts on the first request that needs it.

import * as vscode from 'vscode';
import { Ctx } from './context';
import { createCommands, webviewCommandHandler } from './commands';
import { MeterController } from './meterController';
import { registerPanelSerializer } from './panel';
import { maybeRunTestEntry } from './testEntry';
import type { AttendApi } from './api';

let ctx: Ctx | undefined;

export function activate(context: vscode.ExtensionContext): AttendApi {
  try {
    ctx = new Ctx(context);
    const c = ctx;
    const meter = new MeterController(c);
    c.pushCleanup(meter);
    for (const [name, factory] of Object.entries(createCommands())) {
      c.pushCleanup(vscode.commands.registerCommand(`attend.${name}`, factory(c, meter)));
    }
    c.webviewHandler = webviewCommandHandler(c);
    c.pushCleanup(registerPanelSerializer(context.extensionUri, (m) => c.webviewHandler(m)));
    meter.schedule();
    maybeRunTestEntry(vscode, context);
    return { onDidAsk: c.askEvents.event };
  } catch (e) {
    void vscode.window.showErrorMessage(`Attend failed to activate: ${e instanceof Error ? e.message : String(e)}`);
    throw e;
  }
}

export async function deactivate(): Promise<void> {
  const c = ctx;
  ctx = undefined;
  await c?.dispose();
}
