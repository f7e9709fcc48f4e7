/**
 * The workflow editor, loaded on demand (its own chunk with React Flow): the shell mounts the
 * default export on an app's editor route with `{workspaceId, appId, role}`.
 *
 *   dsl/       the DSL's types and one spec per node type (palette, defaults, outputs, handles)
 *   graph/     pure logic: DSL <-> canvas, variable scoping, validation, layout, clipboard, undo
 *   run/       a run's trace folded from its events
 *   canvas/    node views and the palette
 *   panels/    one settings panel per node type, graph settings
 *   debug/     chat preview / run form and the per-node trace
 */
export { EditorPage, type EditorPageProps } from './EditorPage'
export { EditorPage as default } from './EditorPage'
