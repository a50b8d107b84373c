#!/usr/bin/env node
// compile.js - compile BR2KRegistry.sol with the pinned solc-js and write
// the committed artifacts.
//
// Decision: the compiled artifact is committed, and a test checks that it
// matches a fresh compile (`node registryd/contracts/compile.js --check`,
// run by tests/integration/registry_contract.sh). Why:
//   - the C build must not need node (or solc) at build time: registryd and
//     `br2k registry deploy` read BR2KRegistry.json / the ABI as data;
//   - the bytecode that gets deployed is then part of the reviewed diff, and
//     anyone can reproduce it from the source with this script.
//
// Settings are fixed so the output is reproducible: solc from node_modules
// (pinned in package.json), optimizer on with 200 runs, evmVersion "cancun",
// source key "BR2KRegistry.sol" (the metadata hash embedded in the bytecode
// covers the source text and these settings, not the checkout's path).
// "cancun" runs on anvil 1.7.1 (its default hardfork is newer) and on any
// Ethereum node since Dencun (March 2024); a later target would only add
// opcodes that older nodes reject.
//
// Usage:
//   node registryd/contracts/compile.js           write the artifacts
//   node registryd/contracts/compile.js --check   exit 1 if they are stale
//
// Writes:
//   registryd/contracts/BR2KRegistry.json  {contractName, compiler, abi, bytecode, deployedBytecode}
//   schemas/registry.abi.json              the ABI alone
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const CONTRACT = 'BR2KRegistry';
const SOURCE_KEY = CONTRACT + '.sol';
const EVM_VERSION = 'cancun';
const OPTIMIZER_RUNS = 200;
const PINNED_SOLC = '0.8.37';

const here = __dirname;
const root = path.resolve(here, '..', '..');
const sourcePath = path.join(here, SOURCE_KEY);
const artifactPath = path.join(here, CONTRACT + '.json');
const abiPath = path.join(root, 'schemas', 'registry.abi.json');

function die(msg) {
    process.stderr.write('compile.js: ' + msg + '\n');
    process.exit(1);
}

function compile() {
    const version = solc.version();
    if (!version.startsWith(PINNED_SOLC + '+')) {
        die(`solc is ${version}, expected ${PINNED_SOLC} (run npm ci)`);
    }
    const input = {
        language: 'Solidity',
        sources: { [SOURCE_KEY]: { content: fs.readFileSync(sourcePath, 'utf8') } },
        settings: {
            optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
            evmVersion: EVM_VERSION,
            outputSelection: {
                [SOURCE_KEY]: {
                    [CONTRACT]: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'],
                },
            },
        },
    };
    const output = JSON.parse(solc.compile(JSON.stringify(input)));
    // Warnings count as failures: the contract must compile cleanly.
    const problems = (output.errors || []).filter((e) => e.severity !== 'info');
    if (problems.length > 0) {
        die('solc reported problems:\n' + problems.map((e) => e.formattedMessage).join('\n'));
    }
    const c = output.contracts[SOURCE_KEY][CONTRACT];
    const artifact = {
        contractName: CONTRACT,
        sourceFile: 'registryd/contracts/' + SOURCE_KEY,
        compiler: {
            name: 'solc-js',
            version: version,
            evmVersion: EVM_VERSION,
            optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
        },
        abi: c.abi,
        bytecode: '0x' + c.evm.bytecode.object,
        deployedBytecode: '0x' + c.evm.deployedBytecode.object,
    };
    return {
        [artifactPath]: JSON.stringify(artifact, null, 2) + '\n',
        [abiPath]: JSON.stringify(c.abi, null, 2) + '\n',
    };
}

function main(argv) {
    const args = argv.slice(2);
    const check = args.includes('--check');
    const unknown = args.filter((a) => a !== '--check');
    if (unknown.length > 0) die(`unknown argument '${unknown[0]}' (usage: compile.js [--check])`);

    const files = compile();
    for (const [file, text] of Object.entries(files)) {
        const rel = path.relative(root, file);
        if (check) {
            let old = null;
            try {
                old = fs.readFileSync(file, 'utf8');
            } catch (e) {
                die(`cannot read '${rel}': ${e.message}`);
            }
            if (old !== text) die(`'${rel}' differs from a fresh compile (run node registryd/contracts/compile.js)`);
        } else {
            fs.writeFileSync(file, text);
            process.stdout.write(`wrote ${rel}\n`);
        }
    }
    if (check) process.stdout.write('contract artifacts match a fresh compile\n');
}

main(process.argv);
