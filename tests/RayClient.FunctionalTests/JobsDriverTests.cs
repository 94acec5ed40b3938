using System.IO.Compression;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Server;

namespace RayClient.FunctionalTests;

/// <summary>Python drivers as jobs: the embedded server's `ray` module, connected back to the engine.</summary>
public sealed class JobsDriverTests(JobsServerFixture fixture) : IClassFixture<JobsServerFixture>
{
    /// <summary>The seed's example job (Ray's Fibonacci job example), unchanged, as <c>samples/script.py</c> ships it.</summary>
    public static readonly string SeedScript = File.ReadAllText(Path.Combine(ReadmeSampleTests.FindRepositoryRoot(), "samples", "script.py"));

    private JobsHttp Http => fixture.Http;

    /// <summary>Uploads a directory holding <paramref name="files"/> as a working_dir package; returns its URI.</summary>
    private Task<string> UploadWorkingDirAsync(params (string Name, string Text)[] files) => UploadWorkingDirAsync(Http, files);

    /// <summary>Uploads a directory holding <paramref name="files"/> as a working_dir package of the server behind <paramref name="http"/>; returns its URI.</summary>
    private static async Task<string> UploadWorkingDirAsync(JobsHttp http, params (string Name, string Text)[] files)
    {
        using var zip = new MemoryStream();
        using (var archive = new ZipArchive(zip, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (file, text) in files)
            {
                await using var entry = archive.CreateEntry(file).Open();
                await using var writer = new StreamWriter(entry);
                await writer.WriteAsync(text);
            }
        }

        var bytes = zip.ToArray();
        var name = $"_ray_pkg_{Convert.ToHexStringLower(SHA1.HashData(bytes))[..16]}.zip";
        using var client = new HttpClient();
        using var content = new ByteArrayContent(bytes);
        using var response = await client.PutAsync($"{http.BaseAddress}/api/packages/gcs/{name}", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return $"gcs://{name}";
    }

    private async Task<(JsonNode Job, string Logs)> RunAsync(string entrypoint, string workingDir)
    {
        var id = await Http.SubmitAsync(new JsonObject { ["entrypoint"] = entrypoint, ["runtime_env"] = new JsonObject { ["working_dir"] = workingDir } });
        var (messages, _) = await Http.TailAsync(id);
        var job = await Http.GetJobAsync(id);
        return (job, string.Concat(messages));
    }

    [Fact]
    public async Task SeedScript_AsAJob_PrintsTheClusterAndOneResultPerCpu()
    {
        var workingDir = await UploadWorkingDirAsync(("script.py", SeedScript));

        var (job, logs) = await RunAsync("python script.py", workingDir);

        Assert.True((string?)job["status"] == "SUCCEEDED", logs);
        Assert.Contains("Nodes in the Ray cluster: 1\n", logs);
        Assert.Contains("'CPU': 2.0", logs);
        Assert.EndsWith("[10, 10]\n", logs); // 2 CPUs on this server
        Assert.Matches("^[0-9a-f]{8}$", (string?)job["job_id"]); // the driver registered, as Ray links it
        Assert.Equal((string?)job["job_id"], (string?)job["driver_info"]!["id"]);
    }

    [Fact]
    public async Task PythonDriver_ActorsPutsWaitsContextAndErrors_WorkThroughTheEmbeddedServer()
    {
        const string script = """
            import os
            import ray

            ray.init()
            factor = 3

            class Base:
                def describe(self):
                    return "counter at %d" % self.value

            @ray.remote
            class Counter(Base):
                def __init__(self, start):
                    self.value = start

                def incr(self, by=1):
                    self.value += by * factor
                    return self.value

            @ray.remote(num_returns=2)
            def split(pair):
                return pair[0], pair[1]

            @ray.remote
            def total(values, bonus):
                return sum(values) + bonus

            @ray.remote
            def fail():
                raise ValueError("task failed on purpose")

            def make_adder(n):
                @ray.remote
                def add(x):
                    return x + n
                return add

            counter = Counter.remote(10)
            print("incr", ray.get([counter.incr.remote(), counter.incr.remote(by=2)]))
            print("describe", ray.get(counter.describe.remote()))
            data = ray.put([1, 2, 3])
            print("total", ray.get(total.remote(data, bonus=100)))
            a, b = split.remote(("left", "right"))
            ready, not_ready = ray.wait([a, b], num_returns=2, timeout=30)
            print("wait", len(ready), len(not_ready), ray.get(b))
            print("closure", ray.get(make_adder(5).remote(1)))
            try:
                ray.get(fail.remote())
            except ray.exceptions.RayTaskError as error:
                print("error", "ValueError: task failed on purpose" in str(error))
            ctx = ray.get_runtime_context()
            print("context", ctx.get_job_id() == os.environ["RAY_JOB_ID_EXPECTED"] if "RAY_JOB_ID_EXPECTED" in os.environ else len(ctx.get_job_id()))
            print("submission", ctx.get_submission_id())
            try:
                ray.timeline()
            except AttributeError as error:
                print("unsupported", error)
            """;
        var workingDir = await UploadWorkingDirAsync(("driver.py", script));

        var (job, logs) = await RunAsync("python driver.py", workingDir);

        Assert.True((string?)job["status"] == "SUCCEEDED", logs);
        Assert.Contains("incr [13, 19]\n", logs);
        Assert.Contains("describe counter at 19\n", logs);
        Assert.Contains("total 106\n", logs);
        Assert.Contains("wait 2 0 right\n", logs);
        Assert.Contains("closure 6\n", logs);
        Assert.Contains("error True\n", logs);
        Assert.Contains("context 8\n", logs);
        Assert.Contains($"submission {(string?)job["submission_id"]}\n", logs);
        Assert.Contains("unsupported ray.timeline is not supported by the ray module of the RayClient embedded server", logs);
    }

    [Fact]
    public async Task PythonDriver_TaskOutput_ReachesTheJobLog()
    {
        const string script = """
            import ray

            @ray.remote
            def shout(word):
                print("from the task:", word)
                return word.upper()

            print("result", ray.get(shout.remote("hello")))
            """;
        var workingDir = await UploadWorkingDirAsync(("shout.py", script));

        var (job, logs) = await RunAsync("python shout.py", workingDir);

        Assert.True((string?)job["status"] == "SUCCEEDED", logs);
        Assert.Contains("result HELLO\n", logs); // ray.init() was implicit, as in Ray
        // A task's stdout reaches the driver before its result (the worker sends its output first and
        // the link keeps that order), so the print is in the log once the job has ended: no waiting.
        // PythonDriver_InitLogToDriverFalse_KeepsTaskOutputOutOfTheJobLog relies on this.
        Assert.Contains("from the task: hello", await Http.GetLogsAsync((string)job["submission_id"]!));
    }

    [Fact]
    public async Task PythonDriver_InitLogToDriverFalse_KeepsTaskOutputOutOfTheJobLog()
    {
        const string script = """
            import ray

            ray.init(log_to_driver=False)

            @ray.remote
            def chatty():
                print("quiet task output")
                return "done"

            print("result", ray.get(chatty.remote()))
            print("result", ray.get(chatty.remote()))
            """;
        var workingDir = await UploadWorkingDirAsync(("quiet.py", script));

        var (job, logs) = await RunAsync("python quiet.py", workingDir);

        Assert.True((string?)job["status"] == "SUCCEEDED", logs);
        Assert.Contains("result done\nresult done\n", logs);
        // With log_to_driver on, the same print would be in the log by now (see the test above).
        Assert.DoesNotContain("quiet task output", await Http.GetLogsAsync((string)job["submission_id"]!));
    }

    [Fact]
    public async Task DotNetDriver_ConnectsBackThroughRayAddress()
    {
        // A .NET driver as the entrypoint: rayclient's demo, connecting with RaySession to the
        // RAY_ADDRESS the job's environment carries (what RaySession.ConnectAsync() reads by default).
        var cli = Path.Combine(AppContext.BaseDirectory, "RayClient.Cli");
        var id = await Http.SubmitAsync(new JsonObject { ["entrypoint"] = $"'{cli}' demo --address \"$RAY_ADDRESS\"" });

        var (messages, _) = await Http.TailAsync(id);
        var logs = string.Concat(messages);
        var job = await Http.GetJobAsync(id);

        Assert.True((string?)job["status"] == "SUCCEEDED", logs);
        Assert.Contains($"Connected to {fixture.Server.Address}", logs);
        Assert.Contains("CPUs in the Ray cluster: 2\n", logs);
        Assert.EndsWith("[10, 10]\n", logs);
    }

    [Fact]
    public async Task PythonDriver_OutsideAJob_FailsWithAMessageSayingWhere()
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(fixture.Server.State.PythonExecutable)
        {
            ArgumentList = { "-c", "import ray; ray.init()" },
            Environment = { ["PYTHONPATH"] = fixture.Server.State.DriverModuleDirectory },
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();

        Assert.NotEqual(0, process.ExitCode);
        Assert.Contains("ConnectionError: This is the ray module of the RayClient embedded server: it works inside a job", stderr);
    }

    [Fact]
    public async Task PythonDriver_InitWithNamespaceAndRuntimeEnv_SetsTheJobsNamespace_AndMergesWithTheSubmittedEnv()
    {
        const string script = """
            import os
            import ray

            ctx = ray.init(address="auto", namespace="teamspace", runtime_env={"env_vars": {"FROM_INIT": "init"}},
                           log_to_driver=False, logging_level="info", include_dashboard=False, configure_logging=False)
            print("context", type(ctx).__name__)
            print("namespace", ray.get_runtime_context().namespace)

            @ray.remote
            class Service:
                def ping(self):
                    return "pong"

            service = Service.options(name="svc").remote()
            print("lookup", ray.get(ray.get_actor("svc").ping.remote()), ray.get(ray.get_actor("svc", namespace="teamspace").ping.remote()))
            try:
                ray.get_actor("svc", namespace="other")
            except ValueError:
                print("other namespace: not found")

            @ray.remote
            def env():
                return os.environ.get("FROM_JOB"), os.environ.get("FROM_INIT"), os.path.exists("merge.py")

            print("env", ray.get(env.remote()))
            print("runtime_env", sorted(ray.get_runtime_context().runtime_env["env_vars"].items()), "working_dir" in ray.get_runtime_context().runtime_env)
            print("again", ray.init(ignore_reinit_error=True) is not None)
            try:
                ray.init(namespace="teamspace")
            except RuntimeError as e:
                print("twice", "Maybe you called ray.init twice by accident?" in str(e))
            """;
        var workingDir = await UploadWorkingDirAsync(("merge.py", script));
        var id = await Http.SubmitAsync(new JsonObject
        {
            ["entrypoint"] = "python merge.py",
            ["runtime_env"] = new JsonObject { ["working_dir"] = workingDir, ["env_vars"] = new JsonObject { ["FROM_JOB"] = "job" } },
        });
        var (messages, _) = await Http.TailAsync(id);
        var job = await Http.GetJobAsync(id);
        var logs = string.Concat(messages);

        Assert.True((string?)job["status"] == "SUCCEEDED", logs);
        Assert.Contains("context RayContext\n", logs);
        Assert.Contains("namespace teamspace\n", logs);
        Assert.Contains("lookup pong pong\n", logs);
        Assert.Contains("other namespace: not found\n", logs);
        Assert.Contains("env ('job', 'init', True)\n", logs); // the job's env_vars and working_dir, plus init's
        Assert.Contains("runtime_env [('FROM_INIT', 'init'), ('FROM_JOB', 'job')] True\n", logs);
        Assert.Contains("again True\n", logs);
        Assert.Contains("twice True\n", logs);
    }

    [Fact]
    public async Task PythonDriver_InitArguments_FailAsRayDoes_AndLocalPackagesAreUploaded()
    {
        const string script = """
            import os
            import tempfile
            import ray

            def attempt(label, **kwargs):
                try:
                    ray.init(**kwargs)
                    print(label, "accepted")
                except Exception as e:
                    print(label, type(e).__name__, str(e))

            attempt("unknown", num_cpu=2)
            attempt("cpus", num_cpus=2)
            attempt("resources", resources={"x": 1})
            attempt("conflict", runtime_env={"env_vars": {"FROM_JOB": "mine"}})
            attempt("conflict-key", runtime_env={"working_dir": "."})
            attempt("unsupported", runtime_env={"conda": "myenv"})
            attempt("env type", runtime_env={"env_vars": {"N": 1}})
            print("initialized", ray.is_initialized())

            root = tempfile.mkdtemp()
            wd = os.path.join(root, "wd")
            os.makedirs(wd)
            with open(os.path.join(wd, "data.txt"), "w") as f:
                f.write("from the local working_dir")
            os.makedirs(os.path.join(wd, "cache"))
            with open(os.path.join(wd, "cache", "big.bin"), "w") as f:
                f.write("excluded")
            mod = os.path.join(root, "localmod")
            os.makedirs(mod)
            with open(os.path.join(mod, "__init__.py"), "w") as f:
                f.write("VALUE = 42\n")

            os.environ["RAY_OVERRIDE_JOB_RUNTIME_ENV"] = "1"
            ray.init(runtime_env={"working_dir": wd, "py_modules": [mod], "env_vars": {"FROM_JOB": "mine"}, "excludes": ["cache/"]})

            @ray.remote
            def probe():
                import localmod
                with open("data.txt") as f:
                    return f.read(), localmod.VALUE, os.environ.get("FROM_JOB"), os.path.exists("cache")

            print("probe", ray.get(probe.remote()))
            print("uris", ray.get_runtime_context().runtime_env["working_dir"].startswith("gcs://_ray_pkg_"))
            """;
        var workingDir = await UploadWorkingDirAsync(("args.py", script));
        var id = await Http.SubmitAsync(new JsonObject
        {
            ["entrypoint"] = "python args.py",
            ["runtime_env"] = new JsonObject { ["working_dir"] = workingDir, ["env_vars"] = new JsonObject { ["FROM_JOB"] = "job" } },
        });
        var (messages, _) = await Http.TailAsync(id);
        var job = await Http.GetJobAsync(id);
        var logs = string.Concat(messages);

        Assert.True((string?)job["status"] == "SUCCEEDED", logs);
        Assert.Contains("unknown RuntimeError Unknown keyword argument(s): num_cpu\n", logs); // Ray's exact error
        Assert.Contains("cpus ValueError When connecting to an existing cluster, num_cpus and num_gpus must not be provided.\n", logs);
        Assert.Contains("resources ValueError When connecting to an existing cluster, resources must not be provided.\n", logs);
        Assert.Contains("conflict ValueError Failed to merge the Job's runtime env", logs);
        Assert.Contains("conflict-key ValueError Failed to merge the Job's runtime env", logs);
        Assert.Contains("unsupported NotImplementedError ray.init(runtime_env={'conda': ...})", logs);
        Assert.Contains("initialized False\n", logs);
        Assert.Contains("env type TypeError runtime_env['env_vars'] must be of type Dict[str, str]", logs);
        Assert.Contains("probe ('from the local working_dir', 42, 'mine', False)\n", logs); // excludes left cache/ out
        Assert.Contains("uris True\n", logs);
    }

    [Fact]
    public async Task PythonDriver_DroppedRefs_AreReleased_SoALoopOfPutsFitsTheStore_ButATasksArgumentStays()
    {
        const string script = """
            import gc
            import os
            import tempfile
            import time
            import ray

            ray.init()

            @ray.remote
            def open_when(path):
                deadline = time.monotonic() + 60
                while not os.path.exists(path) and time.monotonic() < deadline:
                    time.sleep(0.01)
                return os.path.exists(path)

            @ray.remote
            def measure(gate, data):
                return gate, len(data)

            # Held only by a task that cannot start yet: the driver drops its own ref.
            path = os.path.join(tempfile.mkdtemp(), "open")
            gate = open_when.remote(path)
            data = ray.put(b"y" * (3 * 1024 * 1024))
            pending = measure.remote(gate, data)
            other = ray.put(b"o" * (3 * 1024 * 1024))
            del data, other
            gc.collect()
            # Both releases go with this put: it fits only because `other` was freed...
            six = ray.put(b"s" * (6 * 1024 * 1024))
            # ...and `data` (3 MB) stays for the pending task, so 3 + 6 + 2 MB do not fit.
            try:
                ray.put(b"t" * (2 * 1024 * 1024))
                print("data was freed")
            except ray.exceptions.ObjectStoreFullError:
                print("data kept for the task")
            del six

            # 40 MB through a 10 MB store: each ref dropped when the next one replaces it.
            for i in range(20):
                ref = ray.put(bytes([i]) * (2 * 1024 * 1024))
            print("loop done", ray.get(ref)[:1] == bytes([19]))
            nested = ray.put([ray.put(b"inner")])
            print("nested", ray.get(ray.get(nested)[0]))

            open(path, "w").close()
            print("pending", ray.get(pending))
            """;
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 2, ObjectStoreMemory = 10 * 1024 * 1024 });
        using var http = new JobsHttp(server.DashboardAddress);
        var workingDir = await UploadWorkingDirAsync(http, ("drop.py", script));

        var id = await http.SubmitAsync(new JsonObject { ["entrypoint"] = "python drop.py", ["runtime_env"] = new JsonObject { ["working_dir"] = workingDir } });
        var (messages, _) = await http.TailAsync(id);
        var job = await http.GetJobAsync(id);
        var logs = string.Concat(messages);

        Assert.True((string?)job["status"] == "SUCCEEDED", logs);
        Assert.Contains("data kept for the task\n", logs);
        Assert.Contains("loop done True\n", logs);
        Assert.Contains("nested b'inner'\n", logs); // a ref inside a value stays usable after the driver dropped its own
        Assert.Contains("pending (True, 3145728)\n", logs);
    }

    [Fact]
    public async Task PythonDriver_ReleaseBookkeeping_BatchesDroppedIds_AndKeepsIdsWithALiveRef()
    {
        // The driver's ref counting on its own (no server): many dropped refs come out as one
        // batch; an id with another live ObjectRef (a copy from ray.wait, a nested ref) does not.
        const string check = """
            import gc
            import ray
            ids = [i.to_bytes(28, "big") for i in range(1000)]
            refs = [ray.ObjectRef(i) for i in ids]
            twin = ray.ObjectRef(ids[0])
            del refs
            gc.collect()
            gone = ray._releases.take()
            print("batch", len(gone), ids[0] in gone, sorted(gone) == sorted(ids[1:]))
            del twin
            print("last", ray._releases.take() == [ids[0]], ray._releases.take() == [])
            """;
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(fixture.Server.State.PythonExecutable)
        {
            ArgumentList = { "-c", check },
            Environment = { ["PYTHONPATH"] = fixture.Server.State.DriverModuleDirectory },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        var stdoutTask = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        var stdout = await stdoutTask;
        await process.WaitForExitAsync();

        Assert.True(process.ExitCode == 0, stderr);
        Assert.Equal("batch 999 False True\nlast True True\n", stdout);
    }

    [Fact]
    public async Task PythonDriver_PutBeyondTheObjectStore_RaisesObjectStoreFullError_AndKeepsWhatIsStored()
    {
        const string script = """
            import ray

            ray.init()
            kept = ray.put(b"a" * (3 * 1024 * 1024))
            try:
                ray.put(b"b" * (8 * 1024 * 1024))
            except ray.exceptions.ObjectStoreFullError as e:
                print("full:", type(e).__module__, type(e).__name__, isinstance(e, ray.exceptions.RayError), "ObjectStoreMemory" in str(e))
                print("kept:", len(ray.get(kept)))
                raise SystemExit(3)
            print("the put went through")
            """;
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, ObjectStoreMemory = 10 * 1024 * 1024 });
        using var http = new JobsHttp(server.DashboardAddress);
        var workingDir = await UploadWorkingDirAsync(http, ("full.py", script));

        var id = await http.SubmitAsync(new JsonObject { ["entrypoint"] = "python full.py", ["runtime_env"] = new JsonObject { ["working_dir"] = workingDir } });
        var (messages, _) = await http.TailAsync(id);
        var job = await http.GetJobAsync(id);
        var logs = string.Concat(messages);

        Assert.Contains("full: ray.exceptions ObjectStoreFullError True True\n", logs);
        Assert.Contains("kept: 3145728\n", logs);
        Assert.True((string?)job["status"] == "FAILED", logs);
        Assert.Contains("exit code 3", (string?)job["message"], StringComparison.Ordinal);
    }
}
