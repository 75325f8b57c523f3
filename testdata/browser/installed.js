// installed.js exits 0 when node_modules holds the playwright-core that
// package-lock.json pins (make deps-browser runs npm ci otherwise).
'use strict';
const want = require('./package-lock.json').packages['node_modules/playwright-core'].version;
let have = '';
try {
  have = require('./node_modules/playwright-core/package.json').version;
} catch (e) {
  // not installed
}
process.exit(have === want ? 0 : 1);
