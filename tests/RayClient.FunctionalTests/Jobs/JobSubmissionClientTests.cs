using System.Text;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Jobs;
using RayClient.Packaging;

namespace RayClient.FunctionalTests.Jobs;

/// <summary>
/// The Jobs client end to end: real HTTP and WebSockets on loopback against a server that answers
/// Ray's Jobs REST contract. Tests take only a base address, so they can be pointed at the embedded
/// server's Jobs API too.
/// </summary>
public sealed class JobSubmissionClientTests : IAsyncLifetime
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(30);
    private RayJobsTestServer _server = null!;
    private string _workingDir = null!;

    public async Task InitializeAsync()
    {
        _server = await RayJobsTestServer.StartAsync();
        _workingDir = Path.Combine(Path.GetTempPath(), "rayclient-jobs-wd", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_workingDir);
        await File.WriteAllTextAsync(Path.Combine(_workingDir, "data.txt"), "hello from the working dir\n");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_workingDir, recursive: true);
    }

    private JobSubmissionClient Client(Action<JobSubmissionClientOptions>? configure = null)
    {
        var options = new JobSubmissionClientOptions
        {
            Address = _server.BaseAddress,
            GetEnvironmentVariable = _ => null,
            RetryPolicy = JobsRetryPolicy.Default with { InitialDelay = TimeSpan.FromMilliseconds(20), MaxDelay = TimeSpan.FromMilliseconds(100) },
            PollInterval = TimeSpan.FromMilliseconds(50),
        };
        configure?.Invoke(options);
        return new JobSubmissionClient(options);
    }

    [Fact]
    public async Task SubmitJobAsync_LocalWorkingDir_UploadsOnceRunsThereAndTailsToTheEnd()
    {
        await using var client = Client();
        var progress = new List<UploadProgress>();
        var submission = new JobSubmission("cat data.txt && echo \"$GREETING\"")
        {
            RuntimeEnv = new RuntimeEnv { WorkingDir = _workingDir, EnvVars = new Dictionary<string, string> { ["GREETING"] = "hi there" } },
            Metadata = new Dictionary<string, string> { ["owner"] = "tests" },
        };

        var id = await client.SubmitJobAsync(submission, new SyncProgress(progress.Add));
        var chunks = new List<string>();
        await foreach (var chunk in client.TailJobLogsAsync(id).WithCancellation(new CancellationTokenSource(s_wait).Token))
        {
            chunks.Add(chunk);
        }

        var info = await client.GetJobInfoAsync(id);
        Assert.True(SubmissionIds.IsGenerated(id), id);
        Assert.Equal(JobStatus.Succeeded, info.Status);
        Assert.Equal(0, info.DriverExitCode);
        Assert.Equal("tests", info.Metadata!["owner"]);
        var uri = info.RuntimeEnv!["working_dir"]!.GetValue<string>();
        Assert.Matches("^gcs://_ray_pkg_[0-9a-f]{16}\\.zip$", uri);
        Assert.Equal(uri, Assert.Single(_server.Packages.Keys));
        var logs = string.Concat(chunks);
        Assert.Contains("hello from the working dir\nhi there\n", logs);
        Assert.Equal(await client.GetJobLogsAsync(id), logs);
        Assert.Contains(progress, p => p.Stage == UploadStage.Uploaded && p.Uri == uri);

        // Same content again: the GET finds it, nothing is put twice.
        await using var second = Client();
        var secondId = await second.SubmitJobAsync(submission);
        Assert.Single(_server.Requests, r => r.Method == "PUT");
        Assert.Equal(2, _server.Requests.Count(r => r.Method == "GET" && r.Path == "/api/packages/gcs/" + uri["gcs://".Length..]));
        Assert.Equal(JobStatus.Succeeded, (await second.WaitUntilStatusAsync(secondId, timeout: s_wait)).Status);
    }

    [Fact]
    public async Task WaitUntilStatusAsync_FailingEntrypoint_ReturnsFailedWithExitCodeAndLogTail()
    {
        await using var client = Client();
        var id = await client.SubmitJobAsync(new JobSubmission("echo about to fail; exit 3") { SubmissionId = "my_failing_job" });

        var info = await client.WaitUntilStatusAsync(id, timeout: s_wait);

        Assert.Equal("my_failing_job", id);
        Assert.Equal(JobStatus.Failed, info.Status);
        Assert.Equal(3, info.DriverExitCode);
        Assert.Contains("about to fail", info.Message);
        Assert.Equal("JOB_ENTRYPOINT_COMMAND_ERROR", info.ErrorType);
    }

    [Fact]
    public async Task WaitUntilStatusAsync_RunningJobAndShortTimeout_ThrowsRayTimeoutNamingTheStatus()
    {
        await using var client = Client();
        var id = await client.SubmitJobAsync(new JobSubmission("sleep 30"));

        var error = await Assert.ThrowsAsync<RayTimeoutException>(() => client.WaitUntilStatusAsync(id, timeout: TimeSpan.FromMilliseconds(200)));

        Assert.Contains("RUNNING", error.Message);
        Assert.True(await client.StopJobAsync(id));
        Assert.Equal(JobStatus.Stopped, (await client.WaitUntilStatusAsync(id, timeout: s_wait)).Status);
        Assert.False(await client.StopJobAsync(id));
    }

    [Fact]
    public async Task StopDeleteList_FollowRaysContract()
    {
        await using var client = Client();
        var id = await client.SubmitJobAsync(new JobSubmission("sleep 30"));
        await client.WaitUntilStatusAsync(id, [JobStatus.Running], s_wait);

        var deleteRunning = await Assert.ThrowsAsync<RayJobsException>(() => client.DeleteJobAsync(id));
        Assert.Equal(500, deleteRunning.StatusCode);
        Assert.Contains("non-terminal state RUNNING", deleteRunning.Message);

        Assert.Contains(await client.ListJobsAsync(), j => j.SubmissionId == id && j.Status == JobStatus.Running && j.Type == JobType.Submission);
        Assert.True(await client.StopJobAsync(id));
        await client.WaitUntilStatusAsync(id, timeout: s_wait);
        Assert.True(await client.DeleteJobAsync(id));
        Assert.DoesNotContain(await client.ListJobsAsync(), j => j.SubmissionId == id);
        await Assert.ThrowsAsync<RayJobNotFoundException>(() => client.GetJobInfoAsync(id));
    }

    [Fact]
    public async Task UnknownJob_EveryCall_ThrowsRayJobNotFound()
    {
        await using var client = Client();
        const string id = "raysubmit_doesnotexist0000";

        var info = await Assert.ThrowsAsync<RayJobNotFoundException>(() => client.GetJobInfoAsync(id));
        await Assert.ThrowsAsync<RayJobNotFoundException>(() => client.GetJobLogsAsync(id));
        await Assert.ThrowsAsync<RayJobNotFoundException>(() => client.StopJobAsync(id));
        await Assert.ThrowsAsync<RayJobNotFoundException>(() => client.DeleteJobAsync(id));
        var tail = await Assert.ThrowsAsync<RayJobNotFoundException>(async () =>
        {
            await foreach (var _ in client.TailJobLogsAsync(id))
            {
            }
        });

        Assert.Equal(404, info.StatusCode);
        Assert.Equal(id, info.JobId);
        Assert.Equal($"Job {id} does not exist", info.ServerMessage);
        Assert.Equal(404, tail.StatusCode);
    }

    [Fact]
    public async Task SubmitJobAsync_DuplicateSubmissionId_ThrowsRayJobAlreadyExistsFromRays500()
    {
        await using var client = Client();
        await client.SubmitJobAsync(new JobSubmission("true") { SubmissionId = "dup-id" });

        var error = await Assert.ThrowsAsync<RayJobAlreadyExistsException>(() => client.SubmitJobAsync(new JobSubmission("true") { SubmissionId = "dup-id" }));

        Assert.Equal(500, error.StatusCode);
        Assert.Equal("dup-id", error.SubmissionId);
        Assert.Contains("Job with submission_id dup-id already exists", error.ServerMessage);
    }

    [Fact]
    public async Task SubmitJobAsync_AnswerLostAfterTheJobStarted_RetriesWithTheSameIdAndStartsItOnce()
    {
        await using var client = Client();
        _server.AbortNextSubmitAnswers(1);

        var id = await client.SubmitJobAsync(new JobSubmission("echo once"));

        var submits = _server.Requests.Where(r => r.Method == "POST" && r.Path == "/api/jobs/").ToList();
        Assert.Equal(2, submits.Count);
        Assert.Equal(2, _server.StartCount(id)); // the second attempt reached the server and was refused as a duplicate
        Assert.Single(await client.ListJobsAsync(), j => j.SubmissionId == id);
        Assert.Equal(JobStatus.Succeeded, (await client.WaitUntilStatusAsync(id, timeout: s_wait)).Status);
        Assert.Equal(1, (await client.GetJobLogsAsync(id)).Split('\n').Count(l => l == "once"));
    }

    [Fact]
    public async Task Requests_ServiceUnavailableTwice_AreRetriedAndSucceed()
    {
        await using var client = Client();
        await client.GetVersionAsync();
        _server.FailNextRequests(2, 503);

        var jobs = await client.ListJobsAsync();

        Assert.Empty(jobs);
        Assert.Equal(3, _server.Requests.Count(r => r.Path == "/api/jobs/"));
    }

    [Fact]
    public async Task Requests_ServiceUnavailableBeyondTheBudget_ThrowTransientRayJobsExceptionWith503()
    {
        await using var client = Client(o => o.RetryPolicy = o.RetryPolicy with { MaxRetryAttempts = 2 });
        await client.GetVersionAsync();
        _server.FailNextRequests(10, 503);

        var error = await Assert.ThrowsAsync<RayJobsException>(() => client.ListJobsAsync());

        Assert.Equal(503, error.StatusCode);
        Assert.True(error.IsTransient);
        Assert.Equal(3, _server.Requests.Count(r => r.Path == "/api/jobs/"));
    }

    [Fact]
    public async Task Requests_ConnectionRefusedUntilTheServerStarts_AreRetriedAndSucceed()
    {
        var port = RayJobsTestServer.FreePort();
        var retried = new EventSignal(RayEventIds.JobsRequestRetry);
        await using var client = new JobSubmissionClient(new JobSubmissionClientOptions
        {
            Address = $"http://127.0.0.1:{port}",
            GetEnvironmentVariable = _ => null,
            LoggerFactory = retried.Factory,
            RetryPolicy = JobsRetryPolicy.Default with { InitialDelay = TimeSpan.FromMilliseconds(50), MaxDelay = TimeSpan.FromMilliseconds(200), MaxRetryAttempts = 50 },
        });

        var version = client.GetVersionAsync();
        await retried.Seen.WaitAsync(s_wait);
        await using var late = await RayJobsTestServer.StartAsync(port);

        Assert.Equal("2.51.0", (await version.WaitAsync(s_wait)).RayVersion);
        Assert.True(retried.Count >= 1);
    }

    [Fact]
    public async Task Requests_ConnectionRefusedWithoutRetries_ThrowRayConnectionExceptionSayingSo()
    {
        await using var client = new JobSubmissionClient(new JobSubmissionClientOptions
        {
            Address = $"http://127.0.0.1:{RayJobsTestServer.FreePort()}",
            GetEnvironmentVariable = _ => null,
            RetryPolicy = JobsRetryPolicy.None,
        });

        var error = await Assert.ThrowsAsync<RayConnectionException>(() => client.ListJobsAsync());

        Assert.Contains("connection refused", error.Message);
        Assert.True(error.IsTransient);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TailJobLogsAsync_StreamEndsWhileTheJobRuns_ReconnectsAndDeliversEveryByteOnce(bool abort)
    {
        await using var client = Client();
        var script = string.Join("; ", Enumerable.Range(1, 40).Select(i => $"echo line{i}"));
        // The job's last line waits for a gate opened only once the client has reconnected its tail,
        // so the stream really ends while the job runs, however slow the machine.
        var gate = Path.Combine(Path.GetTempPath(), "rayclient-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.GetDirectoryName(gate)!);
        var id = await client.SubmitJobAsync(new JobSubmission(script + $"; while [ ! -f {gate} ]; do sleep 0.02; done; echo last"));
        await Eventually.TrueAsync(async () => (await client.GetJobLogsAsync(id)).Contains("line40\n", StringComparison.Ordinal), "the job printed its lines");
        if (abort)
        {
            _server.DropNextTailAfter(1); // no close frame: the client sees the connection break
        }
        else
        {
            _server.CloseNextTailAfter(1); // a normal close while the job still runs
        }

        var release = Task.Run(async () =>
        {
            await Eventually.TrueAsync(() => _server.Requests.Count(r => r.Path.EndsWith("/logs/tail", StringComparison.Ordinal)) >= 2, "the client reconnected its tail");
            await File.WriteAllTextAsync(gate, "go");
        });
        var text = new StringBuilder();
        await foreach (var chunk in client.TailJobLogsAsync(id).WithCancellation(new CancellationTokenSource(s_wait).Token))
        {
            text.Append(chunk);
        }

        await release;
        File.Delete(gate);

        Assert.Equal(await client.GetJobLogsAsync(id), text.ToString());
        Assert.Contains("line40\n", text.ToString());
        Assert.EndsWith("last\n", text.ToString());
        Assert.True(_server.Requests.Count(r => r.Path.EndsWith("/logs/tail", StringComparison.Ordinal)) >= 2);
    }

    [Fact]
    public async Task Requests_CarryUserAgentHeadersCookiesAndToken_NeverABrowserHeader()
    {
        _server.Token = "s3cret";
        await using var client = Client(o =>
        {
            o.Token = "s3cret";
            o.Headers = new Dictionary<string, string> { ["X-Proxy"] = "p1" };
            o.Cookies = new Dictionary<string, string> { ["session"] = "c1" };
        });
        var id = await client.SubmitJobAsync(new JobSubmission("echo authed"));
        await foreach (var _ in client.TailJobLogsAsync(id).WithCancellation(new CancellationTokenSource(s_wait).Token))
        {
        }

        Assert.NotEmpty(_server.Requests);
        Assert.Contains(_server.Requests, r => r.Path.EndsWith("/logs/tail", StringComparison.Ordinal));
        Assert.All(_server.Requests, r =>
        {
            Assert.StartsWith("RayClient.Jobs/", r.Headers["User-Agent"]);
            Assert.Equal("Bearer s3cret", r.Headers["Authorization"]);
            Assert.Equal("p1", r.Headers["X-Proxy"]);
            Assert.Equal("session=c1", r.Headers["Cookie"]);
            Assert.False(r.Headers.ContainsKey("Origin"));
            Assert.False(r.Headers.ContainsKey("Referer"));
        });
    }

    [Fact]
    public async Task Requests_MissingOrWrongToken_ThrowRayJobsUnauthorized()
    {
        _server.Token = "right";
        await using var none = Client();
        await using var wrong = Client(o => o.Token = "wrong");

        var missing = await Assert.ThrowsAsync<RayJobsUnauthorizedException>(() => none.ListJobsAsync());
        var refused = await Assert.ThrowsAsync<RayJobsUnauthorizedException>(() => wrong.ListJobsAsync());

        Assert.Equal(401, missing.StatusCode);
        Assert.Contains("RAY_AUTH_TOKEN", missing.Message);
        Assert.Equal(403, refused.StatusCode);
        Assert.DoesNotContain("wrong", refused.Message);
    }

    [Fact]
    public async Task Client_ServerTooOld_ThrowsRayJobsServerTooOld()
    {
        _server.RayVersion = "1.13.0";
        await using var old = Client();

        var error = await Assert.ThrowsAsync<RayJobsServerTooOldException>(() => old.SubmitJobAsync(new JobSubmission("true")));

        Assert.Equal("1.13.0", error.ServerVersion);
        Assert.Contains("Ray 2.0 or higher", error.Message);
        Assert.DoesNotContain(_server.Requests, r => r.Method == "POST");
    }

    [Fact]
    public async Task SubmitJobAsync_EntrypointMemoryOnRay27_ThrowsServerTooOldBeforeSending()
    {
        _server.RayVersion = "2.7.1";
        await using var client = Client();

        var error = await Assert.ThrowsAsync<RayJobsServerTooOldException>(() => client.SubmitJobAsync(new JobSubmission("true") { EntrypointMemory = 1 << 20 }));
        var cpus = await client.SubmitJobAsync(new JobSubmission("true") { EntrypointNumCpus = 0.5, EntrypointResources = new Dictionary<string, double> { ["custom"] = 1 } });

        Assert.Contains("entrypoint_memory", error.Message);
        Assert.Equal("2.8.0", error.RequiredVersion);
        Assert.Single(_server.Requests, r => r.Method == "POST");
        Assert.NotNull(cpus);
    }

    [Fact]
    public async Task SubmitJobAsync_RuntimeEnvWithNonStringEnvVar_ThrowsRayRuntimeEnvExceptionWithoutSending()
    {
        await using var client = Client();
        var env = RuntimeEnv.FromJson("""{"env_vars": {"A": "1"}, "my_plugin": {"x": 1}}""");

        var error = Assert.Throws<RayRuntimeEnvException>(() => RuntimeEnv.FromJson("""{"env_vars": {"A": 1}}"""));
        var id = await client.SubmitJobAsync(new JobSubmission("true") { RuntimeEnv = env });

        Assert.Contains("env_vars", error.Message);
        Assert.Equal(1, (await client.GetJobInfoAsync(id)).RuntimeEnv!["my_plugin"]!["x"]!.GetValue<int>());
    }

    [Fact]
    public async Task SubmitJobAsync_MissingWorkingDir_ThrowsRayRuntimeEnvExceptionWithoutSending()
    {
        await using var client = Client();

        var error = await Assert.ThrowsAsync<RayRuntimeEnvException>(() =>
            client.SubmitJobAsync(new JobSubmission("true") { RuntimeEnv = new RuntimeEnv { WorkingDir = Path.Combine(_workingDir, "missing") } }));

        Assert.Contains("missing", error.Message);
        Assert.DoesNotContain(_server.Requests, r => r.Method is "POST" or "PUT");
    }

    private sealed class SyncProgress(Action<UploadProgress> report) : IProgress<UploadProgress>
    {
        public void Report(UploadProgress value) => report(value);
    }
}
