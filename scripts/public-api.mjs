#!/usr/bin/env node
// Lists the public surface of `bnn-torch` (everything src/index.ts exports) as text: each name,
// its kind, and its full structure (members of classes and interfaces with their types, function
// signatures). Moving a file must not change a line of it; test/architecture.test.ts compares it
// with test/fixtures/public-api.txt. `--write` records the current surface as the new reference.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const reference = path.join(root, 'test', 'fixtures', 'public-api.txt');

/** The surface as sorted lines. */
export function listPublicApi() {
  const entry = path.join(root, 'src', 'index.ts');
  const config = ts.getParsedCommandLineOfConfigFile(path.join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  const program = ts.createProgram([entry], { ...config.options, noEmit: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  const flags = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseFullyQualifiedType;
  // Type names print without the module they live in, so that moving a file changes nothing.
  const show = (type, at) => checker.typeToString(type, at, flags).replace(/import\("[^"]*"\)\./g, '');
  const lines = [];
  const members = (name, type, at) => {
    for (const p of checker.getPropertiesOfType(type)) {
      if (p.name.startsWith('#') || p.name.startsWith('__')) continue;
      const hidden = (p.declarations ?? []).some((d) => ts.getCombinedModifierFlags(d) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected));
      if (hidden) continue;
      const optional = p.flags & ts.SymbolFlags.Optional ? '?' : '';
      lines.push(`${name}.${p.name}${optional}: ${show(checker.getTypeOfSymbolAtLocation(p, at), at)}`);
    }
  };
  for (const exported of checker.getExportsOfModule(checker.getSymbolAtLocation(source))) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const name = exported.name;
    const at = symbol.declarations?.[0] ?? source;
    if (symbol.flags & ts.SymbolFlags.Class) {
      const ctor = checker.getTypeOfSymbolAtLocation(symbol, at);
      lines.push(`class ${name}`);
      for (const sig of ctor.getConstructSignatures()) lines.push(`${name}.constructor${checker.signatureToString(sig, at, flags).replace(/import\("[^"]*"\)\./g, '')}`);
      members(`${name}#`, checker.getDeclaredTypeOfSymbol(symbol), at);
      members(`${name}.static`, ctor, at);
    } else if (symbol.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias)) {
      const type = checker.getDeclaredTypeOfSymbol(symbol);
      lines.push(`type ${name} = ${show(type, at)}`);
      if (type.isUnion() || type.flags & ts.TypeFlags.Primitive) continue;
      members(name, type, at);
    } else {
      lines.push(`value ${name}: ${show(checker.getTypeOfSymbolAtLocation(symbol, at), at)}`);
    }
  }
  return lines.sort();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = listPublicApi().join('\n') + '\n';
  if (process.argv.includes('--write')) {
    fs.writeFileSync(reference, text);
    console.log(`wrote ${path.relative(root, reference)} (${text.split('\n').length - 1} lines)`);
  } else {
    process.stdout.write(text);
  }
}
