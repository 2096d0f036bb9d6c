import { defineMailboxSuite } from './suite.js';

defineMailboxSuite('redis-streams');
