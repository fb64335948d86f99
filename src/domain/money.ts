/**
 * Dollars are kept as floating point (D1's REAL), and a sum of them is off in the last bits:
 * 0.7 + 0.1 is 0.7999999999999999, which is under a $0.80 budget and shows as such. Every sum
 * is rounded to nine decimals (a billionth of a dollar, far below any price an agent reports,
 * far above the error of adding up to a million dollars) before it is compared or shown.
 */
export const USD_DECIMALS = 9;

export function roundUsd(usd: number): number {
  return Math.round(usd * 10 ** USD_DECIMALS) / 10 ** USD_DECIMALS;
}
