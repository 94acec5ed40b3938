using RayClient.Server;

namespace RayClient.FunctionalTests.Infrastructure;

/// <summary>
/// Starts the embedded server on a free loopback port (real gRPC, real python3 workers) and
/// writes the Python modules the tests call into a working dir.
/// </summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const string TasksModule = """
        import os
        import time

        def add(a, b):
            return a + b

        def echo(x):
            return x

        def noop():
            return None

        def fail(message):
            raise ValueError(message)

        def sleep_then(seconds, value):
            time.sleep(seconds)
            return value

        def env(name):
            return os.environ.get(name)

        def length(data):
            return len(data)

        def make_bytes(n):
            return b"\x07" * n

        def first_ref_hex(items):
            return items[0].hex()

        def identity_list(items):
            return items

        def type_name(x):
            return type(x).__name__

        def pid():
            return os.getpid()

        def crash():
            os._exit(3)

        def cwd_file(name):
            with open(name) as f:
                return f.read()

        def wait_for_file(path, value):
            deadline = time.monotonic() + 60
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.01)
            return value

        def interval(seconds):
            start = time.monotonic()
            time.sleep(seconds)
            return (start, time.monotonic())

        def import_value(module):
            import importlib
            return importlib.import_module(module).VALUE

        class Counter:
            def __init__(self, start=0):
                self.value = start
                self.log = {}

            def incr(self, caller=None, seq=None):
                self.value += 1
                if caller is not None:
                    self.log.setdefault(caller, []).append(seq)
                return self.value

            def get(self):
                return self.value

            def caller_log(self):
                return self.log

            def pid(self):
                return os.getpid()

            def slow(self, marker, seconds):
                open(marker, "w").close()
                time.sleep(seconds)
                return self.value

            def fail(self):
                raise RuntimeError("actor method failed")

            def wait_gate(self, path):
                return wait_for_file(path, "passed the gate")

            def open_gate(self, path):
                open(path, "w").close()
                return "opened"

        def use_counter(counter, times):
            import ray
            refs = [counter.incr.remote() for _ in range(times)]
            return ray.get(refs)[-1]

        def pass_back(counter):
            return counter

        class Broken:
            def __init__(self):
                raise ValueError("constructor failed")

        def print_and_return(text):
            print(text)
            return text

        def print_to_both(out_text, err_text):
            import sys
            print(out_text)
            print(err_text, file=sys.stderr)
            return out_text

        import ray

        @ray.remote
        def fib(n):
            # Each call submits its children and blocks on them: needs blocked workers to lend their CPU.
            if n < 2:
                return n
            return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

        @ray.remote(num_returns=2)
        def split(pair):
            return pair[0], pair[1]

        def swap_in_child(a, b):
            first, second = split.remote((a, b))
            return [ray.get(second), ray.get(first)]

        @ray.remote
        def gated_child(started, gate, done):
            open(started, "w").close()
            wait_for_file(gate, None)
            open(done, "w").close()
            return "child finished"

        def parent_of_gated(started, gate, done):
            return ray.get(gated_child.remote(started, gate, done))
        """;

    public LocalRayServer Server { get; private set; } = null!;

    public string WorkingDir { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        WorkingDir = Path.Combine(Path.GetTempPath(), "rayclient-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(WorkingDir);
        await File.WriteAllTextAsync(Path.Combine(WorkingDir, "tasks.py"), TasksModule);
        await File.WriteAllTextAsync(Path.Combine(WorkingDir, "data.txt"), "shipped with the working dir");
        Server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 2, Resources = { ["accelerator"] = 1 } });
    }

    public Task<RaySession> ConnectAsync(Action<RaySessionOptions>? configure = null)
    {
        var options = new RaySessionOptions { Address = Server.Address, RuntimeEnv = new RuntimeEnv { WorkingDir = WorkingDir } };
        configure?.Invoke(options);
        return RaySession.ConnectAsync(options);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        try
        {
            Directory.Delete(WorkingDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ServerCollection : ICollectionFixture<ServerFixture>
{
    public const string Name = "embedded server";
}

/// <summary>Waits for a condition with a deadline (a bounded poll: the last resort when nothing signals).</summary>
public static class Eventually
{
    public static Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        TrueAsync(() => Task.FromResult(condition()), what, timeout);

    public static async Task TrueAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out waiting until {what}.");
            }

            await Task.Delay(20);
        }
    }
}
