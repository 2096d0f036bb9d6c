import { defineMailboxSuite } from './suite.js';

defineMailboxSuite('jetstream');
