/** Vite's `?raw` import (vitest bundles the tests with Vite): a file's text, as a string. */
declare module "*?raw" {
  const text: string;
  export default text;
}
