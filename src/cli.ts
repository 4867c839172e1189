#!/usr/bin/env node
/**
 * The `dohd` executable. It sets the heap up (heap.ts) before the rest of dohd is even
 * loaded, since loading it is enough to grow the young generation; then runs the CLI.
 */
import { tuneHeap } from './daemon/heap.js';

tuneHeap();
await import('./cli/main.js');
