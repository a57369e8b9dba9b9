// The infer concept: packed 1-bit models and the XNOR-popcount engine, without LibTorch.
export * from './inference-model.js';
export * from './export.js';
