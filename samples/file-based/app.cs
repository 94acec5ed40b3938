#:package RayClient@0.1.0
#:package RayClient.Server@0.1.0

// A .NET 10 file-based app: `dotnet run app.cs` (no project file). With RAY_ADDRESS set
// (ray://head:10001) it runs on that cluster; without, on the embedded server on loopback.
using RayClient;
using RayClient.Server;

var address = Environment.GetEnvironmentVariable("RAY_ADDRESS");
await using var server = address is null ? await LocalRayServer.StartAsync() : null;
address ??= server!.Address;

var code = Directory.CreateTempSubdirectory("ray-app-");
File.WriteAllText(Path.Combine(code.FullName, "squares.py"), """
    def square(x):
        return x * x
    """);

await using var ray = await RaySession.ConnectAsync(new RaySessionOptions
{
    Address = address,
    RuntimeEnv = new RuntimeEnv { WorkingDir = code.FullName },
});

var square = PyFunction.Of<long>("squares", "square");
var refs = Enumerable.Range(1, 8).Select(i => ray.Call(square, i)).ToList(); // all in flight at once
long[] squares = await Task.WhenAll(refs.Select(async r => await r));
Console.WriteLine($"squares: [{string.Join(", ", squares)}]");
Console.WriteLine($"sum: {squares.Sum()}");
code.Delete(recursive: true);
