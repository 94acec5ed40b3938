using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Server;

namespace RayClient.FunctionalTests;

/// <summary>An embedded server (2 CPUs, one custom resource) whose Jobs API the tests talk to over real HTTP.</summary>
public sealed class JobsServerFixture : IAsyncLifetime
{
    public LocalRayServer Server { get; private set; } = null!;

    public JobsHttp Http { get; private set; } = null!;

    public string Scratch { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Scratch = Path.Combine(Path.GetTempPath(), "rayclient-jobs-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Scratch);
        Server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 2, Resources = { ["accelerator"] = 1 } });
        Http = new JobsHttp(Server.DashboardAddress);
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        try
        {
            Directory.Delete(Scratch, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

public sealed partial class JobsApiTests(JobsServerFixture fixture) : IClassFixture<JobsServerFixture>
{
    private JobsHttp Http => fixture.Http;

    private string NewFile(string name) => Path.Combine(fixture.Scratch, Guid.NewGuid().ToString("N") + "-" + name);

    [Fact]
    public async Task Version_ReportsApiLevelAndRayRelease()
    {
        var version = await Http.GetJsonAsync("api/version");

        Assert.Equal("4", (string?)version["version"]);
        Assert.Equal("2.51.0", (string?)version["ray_version"]);
        Assert.StartsWith("session_", (string?)version["session_name"]);
        Assert.NotNull((string?)version["ray_commit"]);
    }

    [Fact]
    public async Task Submit_ShellJob_SucceedsWithRaysDetailsLogsListAndDelete()
    {
        var id = await Http.SubmitAsync(new JsonObject
        {
            ["entrypoint"] = "echo out-line && echo err-line 1>&2 && echo \"$GREETING\" && echo \"sub=$RAY_JOB_CONFIG_JSON_ENV_VAR\"",
            ["runtime_env"] = new JsonObject { ["env_vars"] = new JsonObject { ["GREETING"] = "hi from env_vars" } },
            ["metadata"] = new JsonObject { ["owner"] = "alice" },
        });

        Assert.Matches(SubmissionIdPattern(), id);
        var job = await Http.WaitForStatusAsync(id, "SUCCEEDED", "FAILED");
        Assert.Equal("SUCCEEDED", (string?)job["status"]);
        Assert.Equal("SUBMISSION", (string?)job["type"]);
        Assert.Equal(id, (string?)job["submission_id"]);
        Assert.Equal("Job finished successfully.", (string?)job["message"]);
        Assert.Equal(0, (int?)job["driver_exit_code"]);
        Assert.Null(job["error_type"]);
        Assert.Equal("alice", (string?)job["metadata"]!["owner"]);
        Assert.Equal(fixture.Server.DashboardAddress, (string?)job["driver_agent_http_address"]);
        Assert.Equal(56, ((string?)job["driver_node_id"])!.Length);
        Assert.True((long)job["start_time"]! <= (long)job["end_time"]!);

        var logs = await Http.GetLogsAsync(id);
        Assert.Contains("Runtime env is setting up.", logs);
        Assert.Contains($"Running entrypoint for job {id}: echo out-line", logs);
        Assert.Contains("out-line\n", logs);
        Assert.Contains("err-line\n", logs); // stderr goes into the same log, as in Ray
        Assert.Contains("hi from env_vars\n", logs);
        Assert.Contains("\"job_submission_id\":\"" + id + "\"", logs);
        Assert.True(logs.IndexOf("Runtime env is setting up.", StringComparison.Ordinal) < logs.IndexOf("out-line", StringComparison.Ordinal));

        var list = (JsonArray)await Http.GetJsonAsync("api/jobs/");
        Assert.Contains(list, j => (string?)j!["submission_id"] == id);
        var withoutSlash = (JsonArray)await Http.GetJsonAsync("api/jobs");
        Assert.Equal(list.Count, withoutSlash.Count);

        var (status, body) = await Http.SendAsync(HttpMethod.Delete, $"api/jobs/{id}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True((bool)JsonNode.Parse(body)!["deleted"]!);
        (status, body) = await Http.SendAsync(HttpMethod.Get, $"api/jobs/{id}");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal($"Job {id} does not exist", body);
    }

    [Fact]
    public async Task Submit_FailingEntrypoint_FailedWithExitCodeAndTheLogTail()
    {
        var id = await Http.SubmitAsync(new JsonObject { ["entrypoint"] = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line-$i; done; exit 3" });

        var job = await Http.WaitForStatusAsync(id, "SUCCEEDED", "FAILED");

        Assert.Equal("FAILED", (string?)job["status"]);
        Assert.Equal(3, (int?)job["driver_exit_code"]);
        Assert.Equal("JOB_ENTRYPOINT_COMMAND_ERROR", (string?)job["error_type"]);
        var message = (string)job["message"]!;
        Assert.StartsWith("Job entrypoint command failed with exit code 3, last available logs (truncated to 20,000 chars):\n", message);
        Assert.EndsWith("line-12", message);
        Assert.Contains("line-3\n", message); // the last 10 lines
        Assert.DoesNotContain("line-2\n", message);
    }

    [Fact]
    public async Task Stop_LongJob_SendsSigtermThenSigkillsWhatIgnoresIt()
    {
        var pidFile = NewFile("pid");
        // The shell traps SIGTERM and carries on: only SIGKILL, after the job's 1 s grace period, ends it.
        var id = await Http.SubmitAsync(new JsonObject
        {
            ["entrypoint"] = $"trap 'echo got-sigterm' TERM; echo $$ > {pidFile}; echo started; while true; do sleep 0.05; done",
            ["runtime_env"] = new JsonObject { ["env_vars"] = new JsonObject { ["RAY_JOB_STOP_WAIT_TIME_S"] = "1" } },
        });
        await Http.WaitForStatusAsync(id, "RUNNING");
        await Eventually.TrueAsync(() => File.Exists(pidFile) && File.ReadAllText(pidFile).EndsWith('\n'), "the job wrote its pid");
        var pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);

        var (deleteStatus, deleteBody) = await Http.SendAsync(HttpMethod.Delete, $"api/jobs/{id}");
        Assert.Equal(HttpStatusCode.InternalServerError, deleteStatus);
        Assert.Contains($"Attempted to delete job '{id}', but it is in a non-terminal state RUNNING.", deleteBody);

        var watch = Stopwatch.StartNew();
        var (status, body) = await Http.SendAsync(HttpMethod.Post, $"api/jobs/{id}/stop");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True((bool)JsonNode.Parse(body)!["stopped"]!);

        var job = await Http.WaitForStatusAsync(id, "STOPPED", "FAILED", "SUCCEEDED");
        Assert.Equal("STOPPED", (string?)job["status"]);
        Assert.Equal("Job was intentionally stopped.", (string?)job["message"]);
        Assert.Null(job["driver_exit_code"]);
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(0.9), $"stopped after {watch.Elapsed}: SIGKILL came before the grace period");
        await Eventually.TrueAsync(() => !ProcessExists(pid), "the job's shell is gone");
        await Eventually.TrueAsync(async () => (await Http.GetLogsAsync(id)).Contains("got-sigterm"), "the trap ran");

        (status, body) = await Http.SendAsync(HttpMethod.Post, $"api/jobs/{id}/stop");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.False((bool)JsonNode.Parse(body)!["stopped"]!); // a finished job: not an error, as in Ray
    }

    [Fact]
    public async Task Tail_Websocket_StreamsFromTheStartUntilTheJobEnds()
    {
        var gate = NewFile("gate");
        var id = await Http.SubmitAsync(new JsonObject
        {
            ["entrypoint"] = $"echo first; while [ ! -f {gate} ]; do sleep 0.02; done; for i in $(seq 1 25); do echo tail-$i; done",
        });

        var tail = Http.TailAsync(id);
        await Eventually.TrueAsync(async () => (await Http.GetLogsAsync(id)).Contains("first\n"), "the job printed its first line");
        Assert.False(tail.IsCompleted); // still following a running job
        await File.WriteAllTextAsync(gate, "go");
        var (messages, close) = await tail;

        Assert.Equal(WebSocketCloseStatus.NormalClosure, close);
        var text = string.Concat(messages);
        Assert.StartsWith(DateTime.Now.Year.ToString(System.Globalization.CultureInfo.InvariantCulture), text); // from byte 0: Ray's preamble line
        Assert.Contains("first\n", text);
        Assert.EndsWith("tail-25\n", text);
        Assert.All(messages, m => Assert.True(m.Count(c => c == '\n') <= 10, $"a message has more than 10 lines: {m}"));
        Assert.Equal("SUCCEEDED", (string?)(await Http.GetJobAsync(id))["status"]);
    }

    [Fact]
    public async Task Tail_UnknownJob_HandshakeFailsWith404()
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        var uri = new Uri(Http.BaseAddress.Replace("http://", "ws://", StringComparison.Ordinal) + "/api/jobs/no_such_job/logs/tail");

        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(uri, CancellationToken.None));
        Assert.Equal(HttpStatusCode.NotFound, socket.HttpStatusCode);
    }

    [Theory]
    [InlineData("{\"entrypoint\": \"echo\", \"foo\": 1}", "TypeError: JobSubmitRequest.__init__() got an unexpected keyword argument 'foo'")]
    [InlineData("{\"entrypoint\": 5}", "TypeError: entrypoint must be a string, got <class 'int'>")]
    [InlineData("{\"runtime_env\": {}}", "TypeError: JobSubmitRequest.__init__() missing 1 required positional argument: 'entrypoint'")]
    [InlineData("{\"entrypoint\": \"echo\", \"metadata\": {\"a\": 1}}", "TypeError: metadata values must be strings, got <class 'int'>")]
    [InlineData("{\"entrypoint\": \"echo\", \"runtime_env\": [1]}", "TypeError: runtime_env must be a dict, got <class 'list'>")]
    [InlineData("{\"entrypoint\": \"echo\", \"entrypoint_num_cpus\": \"2\"}", "TypeError: entrypoint_num_cpus must be a number, got <class 'str'>")]
    [InlineData("{\"entrypoint\": \"echo\", \"entrypoint_memory\": 1.5}", "TypeError: entrypoint_memory must be an integer, got <class 'float'>")]
    [InlineData("{\"entrypoint\": \"echo\", \"entrypoint_resources\": {\"x\": \"1\"}}", "TypeError: entrypoint_resources values must be numbers, got <class 'str'>")]
    public async Task Submit_InvalidRequest_400WithRaysTypeError(string body, string expected)
    {
        var (status, text) = await Http.SendAsync(HttpMethod.Post, "api/jobs/", rawBody: body);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.StartsWith("Traceback (most recent call last):", text);
        Assert.Contains(expected + "\n", text);
    }

    [Fact]
    public async Task Submit_NullFieldsAndUnknownRuntimeEnvKeys_AreAccepted()
    {
        // Ray drops null-valued keys before checking, and passes unknown runtime_env keys to plugins.
        var id = await Http.SubmitAsync(new JsonObject
        {
            ["entrypoint"] = "echo ok",
            ["submission_id"] = null,
            ["entrypoint_label_selector"] = null,
            ["runtime_env"] = new JsonObject { ["my_plugin"] = new JsonObject { ["x"] = 1 } },
        });

        Assert.Equal("SUCCEEDED", (string?)(await Http.WaitForStatusAsync(id, "SUCCEEDED", "FAILED"))["status"]);
    }

    [Fact]
    public async Task Submit_DuplicateSubmissionId_500WithRaysMessage()
    {
        var id = "dup_" + Guid.NewGuid().ToString("N");
        Assert.Equal(id, await Http.SubmitAsync(new JsonObject { ["entrypoint"] = "echo one", ["submission_id"] = id }));

        var (status, body) = await Http.SendAsync(HttpMethod.Post, "api/jobs/", new JsonObject { ["entrypoint"] = "echo two", ["submission_id"] = id });

        Assert.Equal(HttpStatusCode.InternalServerError, status);
        Assert.Contains($"Job with submission_id {id} already exists. Please use a different submission_id.", body);
        Assert.Equal("echo one", (string?)(await Http.GetJobAsync(id))["entrypoint"]); // the first job is untouched
    }

    [Fact]
    public async Task Submit_EnvVarsNotStrings_JobFailsAsRaysSupervisorStartFailure()
    {
        // Ray accepts the request (200) and fails the job when it creates the supervisor actor.
        var id = await Http.SubmitAsync(new JsonObject
        {
            ["entrypoint"] = "echo never",
            ["runtime_env"] = new JsonObject { ["env_vars"] = new JsonObject { ["N"] = 1 } },
        });

        var job = await Http.GetJobAsync(id);
        Assert.Equal("FAILED", (string?)job["status"]);
        Assert.Equal("JOB_SUPERVISOR_ACTOR_START_FAILURE", (string?)job["error_type"]);
        Assert.StartsWith($"Failed to start supervisor actor {id}: 'runtime_env['env_vars'] must be of type Dict[str, str], but the value 1 is of type <class 'int'>'", (string?)job["message"]);
    }

    [Fact]
    public async Task Submit_MissingWorkingDirPackage_FailsWithRuntimeEnvSetupFailure()
    {
        var id = await Http.SubmitAsync(new JsonObject
        {
            ["entrypoint"] = "echo never",
            ["runtime_env"] = new JsonObject { ["working_dir"] = "gcs://_ray_pkg_0123456789abcdef.zip" },
        });

        var job = await Http.WaitForStatusAsync(id, "FAILED", "SUCCEEDED");
        Assert.Equal("FAILED", (string?)job["status"]);
        Assert.Equal("RUNTIME_ENV_SETUP_FAILURE", (string?)job["error_type"]);
        Assert.StartsWith("runtime_env setup failed: ", (string?)job["message"]);
        Assert.Contains("gcs://_ray_pkg_0123456789abcdef.zip", (string?)job["message"]);
    }

    [Fact]
    public async Task UnknownJob_Is404OnEveryRoute()
    {
        foreach (var (method, path) in new[]
        {
            (HttpMethod.Get, "api/jobs/nope"), (HttpMethod.Post, "api/jobs/nope/stop"),
            (HttpMethod.Delete, "api/jobs/nope"), (HttpMethod.Get, "api/jobs/nope/logs"),
        })
        {
            var (status, body) = await Http.SendAsync(method, path);
            Assert.Equal(HttpStatusCode.NotFound, status);
            Assert.Equal("Job nope does not exist", body);
        }
    }

    [Fact]
    public async Task Submit_FromABrowser_405()
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, Http.BaseAddress + "/api/jobs/")
        {
            Content = new StringContent("{\"entrypoint\": \"echo pwned\"}"),
        };
        request.Headers.TryAddWithoutValidation("User-Agent", "Mozilla/5.0");

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal("Method Not Allowed for browser traffic.", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task EntrypointResources_AreHeldForTheJobAndEnforced()
    {
        var gate = NewFile("gate");
        var holder = await Http.SubmitAsync(new JsonObject
        {
            ["entrypoint"] = $"while [ ! -f {gate} ]; do sleep 0.02; done",
            ["entrypoint_num_cpus"] = 2,
        });
        await Http.WaitForStatusAsync(holder, "RUNNING");

        var waiting = await Http.SubmitAsync(new JsonObject { ["entrypoint"] = "echo got a cpu", ["entrypoint_num_cpus"] = 1 });
        var pending = await Http.GetJobAsync(waiting);
        Assert.Equal("PENDING", (string?)pending["status"]);
        Assert.Equal("Job has not started yet. It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available.", (string?)pending["message"]);
        Assert.Equal(string.Empty, await Http.GetLogsAsync(waiting)); // no driver yet: Ray answers no logs

        var impossible = await Http.SubmitAsync(new JsonObject { ["entrypoint"] = "echo never", ["entrypoint_resources"] = new JsonObject { ["accelerator"] = 2 } });
        var refused = await Http.WaitForStatusAsync(impossible, "FAILED");
        Assert.Equal("JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE", (string?)refused["error_type"]);
        Assert.Contains("2 accelerator", (string?)refused["message"]);
        // A job submitted after it was already scheduled (and refused), so the scheduler has had its
        // turn: the one-CPU job still waits for the CPUs the first job holds.
        Assert.Equal("PENDING", (string?)(await Http.GetJobAsync(waiting))["status"]);

        await File.WriteAllTextAsync(gate, "go");
        Assert.Equal("SUCCEEDED", (string?)(await Http.WaitForStatusAsync(waiting, "SUCCEEDED", "FAILED"))["status"]);
        Assert.Equal("SUCCEEDED", (string?)(await Http.WaitForStatusAsync(holder, "SUCCEEDED", "FAILED"))["status"]);
    }

    [Fact]
    public async Task Packages_UploadedOverRest_RunAsTheJobsWorkingDir_AndAreSharedWithRayClient()
    {
        var dir = NewFile("wd");
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "data.txt"), "shipped over REST");
        var zip = NewFile("wd.zip");
        ZipFile.CreateFromDirectory(dir, zip);
        var name = "_ray_pkg_" + Guid.NewGuid().ToString("N")[..16] + ".zip";

        var (status, body) = await Http.SendAsync(HttpMethod.Get, $"api/packages/gcs/{name}");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal($"Package gcs://{name} does not exist", body);
        using (var http = new HttpClient())
        using (var content = new ByteArrayContent(await File.ReadAllBytesAsync(zip)))
        {
            using var put = await http.PutAsync($"{Http.BaseAddress}/api/packages/gcs/{name}", content);
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await Http.SendAsync(HttpMethod.Get, $"api/packages/gcs/{name}")).Status);
        var id = await Http.SubmitAsync(new JsonObject { ["entrypoint"] = "cat data.txt", ["runtime_env"] = new JsonObject { ["working_dir"] = $"gcs://{name}" } });
        Assert.Equal("SUCCEEDED", (string?)(await Http.WaitForStatusAsync(id, "SUCCEEDED", "FAILED"))["status"]);
        Assert.Contains("shipped over REST", await Http.GetLogsAsync(id));

        // A working dir a Ray Client session uploaded is in the same store.
        var clientDir = NewFile("client-wd");
        Directory.CreateDirectory(clientDir);
        await File.WriteAllTextAsync(Path.Combine(clientDir, "x.py"), "VALUE = 1\n");
        await using (var ray = await RaySession.ConnectAsync(new RaySessionOptions { Address = fixture.Server.Address, RuntimeEnv = new RuntimeEnv { WorkingDir = clientDir } }))
        {
            var uri = RayClient.Packaging.Packaging.GetUriForDirectory(clientDir, [], RayClient.Packaging.PackagingOptions.Default);
            Assert.Equal(HttpStatusCode.OK, (await Http.SendAsync(HttpMethod.Get, $"api/packages/gcs/{uri["gcs://".Length..]}")).Status);
        }
    }

    private static bool ProcessExists(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    [GeneratedRegex("^raysubmit_[A-HJ-NP-Za-km-z1-9]{16}$")]
    private static partial Regex SubmissionIdPattern();
}

public sealed class JobsRestartTests
{
    [Fact]
    public async Task Restart_KeepsFinishedJobsAndLogs_AndFailsJobsThatWereRunning()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "rayclient-jobs-restart", Guid.NewGuid().ToString("N"));
        var pidFile = Path.Combine(dataDir, "pid");
        Directory.CreateDirectory(dataDir);
        try
        {
            string finished, running;
            int pid;
            await using (var first = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, DataDirectory = dataDir }))
            {
                using var http = new JobsHttp(first.DashboardAddress);
                finished = await http.SubmitAsync(new JsonObject { ["entrypoint"] = "echo done-before-restart" });
                Assert.Equal("SUCCEEDED", (string?)(await http.WaitForStatusAsync(finished, "SUCCEEDED", "FAILED"))["status"]);
                running = await http.SubmitAsync(new JsonObject { ["entrypoint"] = $"echo $$ > {pidFile}; exec sleep 120" });
                await http.WaitForStatusAsync(running, "RUNNING");
                await Eventually.TrueAsync(() => File.Exists(pidFile) && File.ReadAllText(pidFile).EndsWith('\n'), "the job wrote its pid");
                pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            }

            await using var second = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, DataDirectory = dataDir });
            using var again = new JobsHttp(second.DashboardAddress);

            var done = await again.GetJobAsync(finished);
            Assert.Equal("SUCCEEDED", (string?)done["status"]);
            Assert.Equal(0, (int?)done["driver_exit_code"]);
            Assert.Contains("done-before-restart\n", await again.GetLogsAsync(finished));

            var lost = await again.GetJobAsync(running);
            Assert.Equal("FAILED", (string?)lost["status"]);
            Assert.Equal("JOB_SUPERVISOR_ACTOR_DIED", (string?)lost["error_type"]);
            Assert.Contains("stopped while the job was RUNNING", (string?)lost["message"]);
            Assert.NotNull(lost["end_time"]);
            Assert.Equal(2, ((JsonArray)await again.GetJsonAsync("api/jobs/")).Count);
            Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid)); // its driver did not outlive the server
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }
}
