/**
 * Placeholder until console-editor's editor lands: the shell lazily mounts this module's
 * default export, `EditorPage`, on an app's editor tab.
 */
import { createElement } from "react";

export interface EditorPageProps {
  workspaceId: string;
  appId: string;
  role: string;
}

export function EditorPage(props: EditorPageProps) {
  return createElement("p", { className: "empty" }, `The workflow editor for app ${props.appId} is not built yet.`);
}

export default EditorPage;
