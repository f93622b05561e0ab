// Ends as `threw`: the error's name, message and a stack that points into this file (not the host).
function parsePrice(text: string): number {
  const value = Number(text);
  if (Number.isNaN(value)) {
    throw new TypeError(`not a price: ${text}`);
  }
  return value;
}

console.log(parsePrice("12.50"));
return parsePrice("twelve");
