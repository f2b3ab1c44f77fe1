// Which attend.model.path value counts (pure, no `vscode`, so it is unit-tested): in an untrusted workspace only the
// user's own (global) value, so a workspace cannot point the engine at a model folder of its choosing.

export interface InspectedSetting {
  readonly globalValue?: string | undefined;
  readonly workspaceValue?: string | undefined;
  readonly workspaceFolderValue?: string | undefined;
}

export interface ModelPathChoice {
  /** The value to use, trimmed; '' means the built-in model. */
  readonly raw: string;
  /** A workspace (or folder) value that was ignored because the workspace is not trusted. */
  readonly ignoredWorkspaceValue: string | null;
}

/**
 * `effective` is what the configuration API resolves (user, then workspace, then folder, as VS Code's scope rules
 * allow); it is used only in a trusted workspace. Untrusted: the global value, whatever the workspace says.
 */
export function chooseModelPath(inspected: InspectedSetting | undefined, effective: string | undefined, trusted: boolean): ModelPathChoice {
  const workspaceValue = inspected?.workspaceFolderValue ?? inspected?.workspaceValue;
  const configured = trusted ? effective : inspected?.globalValue;
  return {
    raw: (typeof configured === 'string' ? configured : '').trim(),
    ignoredWorkspaceValue: !trusted && typeof workspaceValue === 'string' && workspaceValue.trim() !== '' ? workspaceValue : null,
  };
}
