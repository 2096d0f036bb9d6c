import { defineMailboxSuite } from './suite.js';

defineMailboxSuite('memory-polling');
