#!/usr/bin/env node
// The `bnn` command line. One module per command under ./commands; every failure is a one-line
// reason and a non-zero exit code (2 for bad usage), never a stack trace.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';

import { isBnnError } from '../errors.js';
import { VERSION } from '../core/version.js';
import { UsageError } from './common.js';
import * as ablate from './commands/ablate.js';
import * as benchInfer from './commands/bench-infer.js';
import * as evalCommand from './commands/eval.js';
import * as exportCommand from './commands/export.js';
import * as info from './commands/info.js';
import * as predict from './commands/predict.js';
import * as prepare from './commands/prepare.js';
import * as summary from './commands/summary.js';
import * as train from './commands/train.js';

function fail(message: string, code: number): never {
  process.stderr.write(`bnn: ${message.split('\n').join('\n  ')}\n`);
  process.exit(code);
}

try {
  await yargs(hideBin(process.argv))
    .scriptName('bnn')
    .version(VERSION)
    .command(train)
    .command(evalCommand)
    .command(prepare)
    .command(summary)
    .command(exportCommand)
    .command(predict)
    .command(benchInfer)
    .command(info)
    .command(ablate)
    .demandCommand(1, 'give a command: train, eval, prepare, summary, export, predict, bench-infer, info or ablate')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      if (err) throw err;
      fail(`${msg} (see bnn --help)`, 2);
    })
    .parseAsync();
} catch (e) {
  if (e instanceof UsageError) fail(e.message, e.exitCode);
  if (isBnnError(e)) fail(e.message, 1);
  fail(e instanceof Error ? e.message : String(e), 1);
}
