/**
 * Ablations: the recipe and the recipe with one trick turned off, over several seeds, as child
 * `bnn train` runs, summarised in ablation.json, ablation.md and ablation.html (`bnn ablate`).
 *
 * @module
 */
export { ABLATION_VARIANTS, ablationVariant, planAblation, mergeFlags, type AblationVariant, type AblationPlan, type AblationPlanOptions, type PlannedRun } from './variants.js';
export { runAblation, ablationCommand, type AblationOptions, type AblationOutcome } from './run.js';
export { summarizeAblation, type AblationResult, type AblationRunResult, type AblationRunStatus, type AblationVariantResult, type AblationDelta } from './result.js';
export { renderAblationMarkdown, renderAblationHtml } from './render.js';
export { summarize, welchInterval, pairedInterval, studentTQuantile, studentTCdf, regularizedIncompleteBeta, type Summary, type DifferenceInterval } from './stats.js';
