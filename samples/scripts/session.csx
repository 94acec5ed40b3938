#r "nuget: RayClient, 0.1.0"

// An interactive-style session, as typed line by line in a REPL (dotnet script, dotnet repl):
// refs are displayed without await, values are awaited, nothing blocks the prompt.
using RayClient;

var address = Args.Count > 0 ? Args[0] : Environment.GetEnvironmentVariable("RAY_ADDRESS") ?? "ray://127.0.0.1:10001";
var ray = await RaySession.ConnectAsync(address);
var pow = PyFunction.Of<double>("math", "pow");
var r = ray.Call(pow, 2, 10);          // returns at once
Console.WriteLine(r);                   // ObjectRef(pending) or ObjectRef(<id>): never blocks
Console.WriteLine(await r);             // 1024
var refs = Enumerable.Range(0, 5).Select(i => ray.Call(pow, 3, i)).ToList();
var values = await ray.GetAsync(refs);
Console.WriteLine($"powers of 3: {string.Join(", ", values)}");
Console.WriteLine($"state: {ray.ConnectionState.Status}");
await ray.DisposeAsync();
Console.WriteLine($"state: {ray.ConnectionState.Status}");
