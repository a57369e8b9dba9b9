/**
 * The run report: `report.html`, a self-contained page (inline CSS and SVG charts, no script,
 * no network) that `bnn train` writes into each run directory.
 *
 * @module
 */
export { readRunDirectory, parseMetrics, type RunRecord, type EpochRecord, type FinalRecord, type DiagnosticsRecord, type LayerDiagnosticsRecord } from './run-record.js';
export { renderReport, type RenderOptions } from './render.js';
export { writeReport, REPORT_FILE_NAME } from './write.js';
