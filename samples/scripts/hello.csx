#r "nuget: RayClient, 0.1.0"

// Connect, call, print. Run with dotnet-script: dotnet script hello.csx -- ray://127.0.0.1:10001
// (start a server first with `rayclient start`, or pass your cluster's address).
using RayClient;

var address = Args.Count > 0 ? Args[0] : Environment.GetEnvironmentVariable("RAY_ADDRESS") ?? "ray://127.0.0.1:10001";
var ray = await RaySession.ConnectAsync(address); // scripts have no top-level `await using`
var factorial = PyFunction.Of<long>("math", "factorial");
Console.WriteLine($"factorial(12) = {await ray.Call(factorial, 12)}");
Console.WriteLine($"Ray {ray.Server.RayVersion}, CPUs: {(await ray.GetClusterResourcesAsync())["CPU"]}");
await ray.DisposeAsync();
