/**
 * The workflow editor, loaded on demand (its own chunk with React Flow): the shell mounts the
 * default export on an app's editor route with `{workspaceId, appId, role}`.
 *
 *   dsl/       the DSL's types and one spec per node type (palette, defaults, outputs, handles)
 *   graph/     pure logic: DSL <-> canvas, variable scoping, validation, layout, clipboard, undo,
 *              moving nodes into and out of iteration/loop containers
 *   run/       a run's trace folded from its events (nodes, answer, an agent's rounds and tool calls)
 *   canvas/    node views and the palette
 *   panels/    one settings panel per node type, graph settings
 *   debug/     chat preview / run form, the per-node trace, an agent's rounds, past runs
 */
export { EditorPage, type EditorPageProps } from './EditorPage'
export { EditorPage as default } from './EditorPage'
