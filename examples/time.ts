// Calls a real MCP server (mcp-server-time) through the binding proxy. Run it with `make run`.
interface TimeResult {
  timezone: string;
  datetime: string;
  day_of_week: string;
}

const now: TimeResult = await mcp.time.get_current_time({ timezone: "UTC" });
console.log(`it is ${now.day_of_week} in ${now.timezone}`);

const tokyo = await mcp.time.convert_time({
  source_timezone: "UTC",
  time: "12:00",
  target_timezone: "Asia/Tokyo",
});

return {
  utc: now.datetime,
  noonUtcInTokyo: tokyo.target.datetime,
  difference: tokyo.time_difference,
};
