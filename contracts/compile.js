#!/usr/bin/env node
// Compiles contracts/src/*.sol with solc-js (WebAssembly: works offline) and writes the ABI and
// bytecode the Python library loads to swarm/ledger/artifacts/. With --check it compiles to
// memory and exits 1 if the committed artifacts differ, so CI proves they match the sources.
//
// Imports of "@openzeppelin/..." resolve from node_modules (package.json pins the version).
// Prints each deployed contract's size against the EIP-170 limit and fails above it.
//
// Usage: node contracts/compile.js [--check]
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
const SRC = path.join(__dirname, "src");
const OUT = path.join(ROOT, "swarm", "ledger", "artifacts");
const NODE_MODULES = path.join(ROOT, "node_modules");
const CONTRACTS = ["Consortium", "SwarmLedger"]; // deployable contracts; interfaces and libraries are compiled in
const EIP170_LIMIT = 24576; // bytes of deployed code

// py-evm / eth-tester run cancun; solc 0.8.37 defaults to a later fork.
const SETTINGS = {
  evmVersion: "cancun",
  viaIR: true, // copies string[] calldata into storage (member multiaddrs)
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

// solc-js import callback: package imports from node_modules, nothing else.
function findImport(importPath) {
  const file = path.resolve(NODE_MODULES, importPath);
  if (!file.startsWith(NODE_MODULES + path.sep) || !fs.existsSync(file)) {
    return { error: `import not found: ${importPath} (run: npm ci)` };
  }
  return { contents: fs.readFileSync(file, "utf8") };
}

function compile() {
  const sources = {};
  for (const name of fs.readdirSync(SRC).sort()) {
    if (name.endsWith(".sol")) sources[name] = { content: fs.readFileSync(path.join(SRC, name), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
  if (errors.length) process.exit(2);
  const artifacts = {};
  let oversized = 0;
  for (const contract of CONTRACTS) {
    const unit = output.contracts[`${contract}.sol`][contract];
    const size = unit.evm.deployedBytecode.object.length / 2;
    process.stderr.write(`${contract}: ${size} bytes deployed (EIP-170 limit ${EIP170_LIMIT})\n`);
    if (size > EIP170_LIMIT) oversized += 1;
    artifacts[contract] = JSON.stringify(
      {
        contractName: contract,
        compiler: { name: "solc-js", version: solc.version(), settings: { evmVersion: SETTINGS.evmVersion, viaIR: SETTINGS.viaIR, optimizer: SETTINGS.optimizer } },
        abi: unit.abi,
        bytecode: "0x" + unit.evm.bytecode.object,
        deployedBytecode: "0x" + unit.evm.deployedBytecode.object,
      },
      null,
      2,
    ) + "\n";
  }
  if (oversized) {
    process.stderr.write("a deployed contract exceeds the EIP-170 limit\n");
    process.exit(3);
  }
  return artifacts;
}

const check = process.argv.includes("--check");
const artifacts = compile();
let stale = 0;
for (const [contract, text] of Object.entries(artifacts)) {
  const file = path.join(OUT, `${contract}.json`);
  if (check) {
    const committed = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    if (committed !== text) {
      process.stderr.write(`stale artifact: ${path.relative(ROOT, file)} differs from contracts/src (run: node contracts/compile.js)\n`);
      stale += 1;
    }
  } else {
    fs.mkdirSync(OUT, { recursive: true });
    fs.writeFileSync(file, text);
    process.stdout.write(`wrote ${path.relative(ROOT, file)}\n`);
  }
}
if (check) {
  if (stale) process.exit(1);
  process.stdout.write("contract artifacts match the sources\n");
}
