// Ends as `completed`: TypeScript runs with its types stripped, and `return` gives the result.
interface Order {
  id: string;
  total: number;
}

const orders: Order[] = [
  { id: "A-1", total: 120 },
  { id: "A-2", total: 80 },
  { id: "A-3", total: 45.5 },
];

const big = orders.filter((o) => o.total >= 50);
console.log(`${big.length} of ${orders.length} orders are at least 50`);

// Timers work; the clock only moves across awaits.
const before = Date.now();
await new Promise((resolve) => setTimeout(resolve, 10));
console.info(`waited ${Date.now() - before} ms`);

return {
  count: big.length,
  sum: big.reduce((s, o) => s + o.total, 0),
  ids: big.map((o) => o.id),
};
