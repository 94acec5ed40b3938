using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using RayClient.Cli;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Jobs;
using RayClient.Packaging;
using RayClient.Server;

namespace RayClient.FunctionalTests.Jobs;

/// <summary>
/// One embedded server (2 CPUs) for the class, and a working dir holding the seed's
/// <c>samples/script.py</c> unchanged, as <c>rayclient job submit --working-dir ./</c> ships it.
/// </summary>
public sealed class EmbeddedJobsFixture : IAsyncLifetime
{
    public LocalRayServer Server { get; private set; } = null!;

    public string WorkingDir { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        WorkingDir = Path.Combine(Path.GetTempPath(), "rayclient-embedded-jobs", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(WorkingDir);
        File.Copy(Path.Combine(ReadmeSampleTests.FindRepositoryRoot(), "samples", "script.py"), Path.Combine(WorkingDir, "script.py"));
        Server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 2 });
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

/// <summary>
/// The Jobs client and the <c>rayclient job</c> CLI against the REAL embedded server's Jobs API
/// (<see cref="LocalRayServer.DashboardAddress"/>): real HTTP, WebSockets, shell entrypoints and
/// python3 drivers. The other Jobs client tests use a stand-in server; these check that the two
/// sides agree on the wire.
/// </summary>
public sealed partial class EmbeddedServerJobsTests(EmbeddedJobsFixture fixture) : IClassFixture<EmbeddedJobsFixture>
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(60);

    private string Address => fixture.Server.DashboardAddress;

    private JobSubmissionClient Client(string? address = null, Action<JobSubmissionClientOptions>? configure = null, HttpMessageHandler? handler = null)
    {
        var options = new JobSubmissionClientOptions
        {
            Address = address ?? Address,
            GetEnvironmentVariable = _ => null,
            PollInterval = TimeSpan.FromMilliseconds(50),
            HttpHandler = handler,
        };
        configure?.Invoke(options);
        return new JobSubmissionClient(options);
    }

    private async Task<(int Exit, string Output, string Error)> RunCliAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        string[] withAddress = args.Contains("--")
            ? [.. args.TakeWhile(a => a != "--"), "--address", Address, .. args.SkipWhile(a => a != "--")]
            : [.. args, "--address", Address];
        var exit = await CliApp.BuildRootCommand(output, error, TimeSpan.FromMilliseconds(50))
            .Parse(withAddress).InvokeAsync().WaitAsync(s_wait);
        return (exit, output.ToString(), error.ToString());
    }

    private static string SubmittedId(string output) => SubmittedRegex().Match(output).Groups[1].Value;

    [GeneratedRegex("Job '([^']+)' submitted successfully")]
    private static partial Regex SubmittedRegex();

    [Fact]
    public async Task JobCli_SeedFlow_SubmitNoWaitStatusLogsFollowStopListDelete()
    {
        var submit = await RunCliAsync("job", "submit", "--no-wait", "--", "sh", "-c", "echo started; sleep 60");
        Assert.True(submit.Exit == 0, submit.Error);
        var id = SubmittedId(submit.Output);
        Assert.True(SubmissionIds.IsGenerated(id), submit.Output);
        Assert.StartsWith($"Job submission server address: {Address}{Environment.NewLine}", submit.Output);

        await using (var client = Client())
        {
            await client.WaitUntilStatusAsync(id, [JobStatus.Running], s_wait);
            await Eventually.TrueAsync(async () => (await client.GetJobLogsAsync(id)).Contains("started\n", StringComparison.Ordinal), "the job printed");
        }

        var status = await RunCliAsync("job", "status", id);
        Assert.True(status.Exit == 0, status.Error);
        Assert.Contains($"Status for job '{id}': RUNNING{Environment.NewLine}Status message: Job is currently running.", status.Output);

        // logs --follow streams until the job ends: here, until the stop below.
        var follow = RunCliAsync("job", "logs", "--follow", id);
        Assert.False(follow.IsCompleted, "logs --follow returned while the job runs");
        var stop = await RunCliAsync("job", "stop", id);
        Assert.True(stop.Exit == 0, stop.Error);
        Assert.Contains($"Attempting to stop job '{id}'", stop.Output);
        Assert.EndsWith($"Job '{id}' was stopped{Environment.NewLine}", stop.Output);

        var followed = await follow;
        Assert.True(followed.Exit == 0, followed.Error);
        Assert.Contains($"Running entrypoint for job {id}: sh -c 'echo started; sleep 60'\nstarted\n", followed.Output);

        var list = await RunCliAsync("job", "list");
        Assert.True(list.Exit == 0, list.Error);
        Assert.Matches($"(?m)^{id}\\s+-\\s+SUBMISSION\\s+STOPPED\\s", list.Output);

        var delete = await RunCliAsync("job", "delete", id);
        Assert.True(delete.Exit == 0, delete.Error);
        Assert.Contains($"Job '{id}' deleted successfully", delete.Output);

        var gone = await RunCliAsync("job", "status", id);
        Assert.Equal(1, gone.Exit);
        Assert.Equal($"error: Job '{id}' does not exist (HTTP 404).{Environment.NewLine}", gone.Error);
    }

    [Fact]
    public async Task JobCli_SubmitSeedScriptWithWorkingDir_PrintsTheClusterSummaryAndTenTenAndExitsZero()
    {
        var result = await RunCliAsync("job", "submit", "--working-dir", fixture.WorkingDir, "--", "python", "script.py");

        Assert.True(result.Exit == 0, result.Output + result.Error);
        Assert.Matches("Uploading package gcs://_ray_pkg_[0-9a-f]{16}\\.zip", result.Output);
        var tail = result.Output[result.Output.IndexOf("Tailing logs until the job exits (disable with --no-wait):", StringComparison.Ordinal)..];
        Assert.Contains("Nodes in the Ray cluster: 1\n", tail);
        Assert.Matches("Cluster resources: \\{[^\\n]*'CPU': 2\\.0", tail);
        var id = SubmittedId(result.Output);
        var n = Environment.NewLine;
        var banner = $"Job '{id}' succeeded";
        var dashes = new string('-', banner.Length);
        Assert.EndsWith($"[10, 10]\n{n}{dashes}{n}{banner}{n}{dashes}{n}{n}", result.Output);
    }

    [Fact]
    public async Task JobSubmissionClient_SeedSdkFlow_SubmitWithWorkingDirWaitLogsListStopDelete()
    {
        await using var client = Client();
        var progress = new List<UploadProgress>();
        // Its own working dir (other content than the CLI test's, so another package to upload).
        var workingDir = Path.Combine(fixture.WorkingDir, "sdk");
        Directory.CreateDirectory(workingDir);
        File.Copy(Path.Combine(fixture.WorkingDir, "script.py"), Path.Combine(workingDir, "script.py"));
        await File.WriteAllTextAsync(Path.Combine(workingDir, "owner.txt"), "sdk flow");

        var id = await client.SubmitJobAsync(
            new JobSubmission("python script.py") { RuntimeEnv = new RuntimeEnv { WorkingDir = workingDir } },
            new SyncProgress(progress.Add));
        var done = await client.WaitUntilStatusAsync(id, timeout: s_wait);

        Assert.True(done.Status == JobStatus.Succeeded, done.Message);
        Assert.Contains(progress, p => p.Field == "working_dir" && p.Stage == UploadStage.Uploaded); // through /api/packages
        Assert.Matches("^gcs://_ray_pkg_[0-9a-f]{16}\\.zip$", (string?)done.RuntimeEnv!["working_dir"]);
        var logs = await client.GetJobLogsAsync(id);
        Assert.Contains("Nodes in the Ray cluster: 1\n", logs);
        Assert.EndsWith("[10, 10]\n", logs);
        Assert.Contains(await client.ListJobsAsync(), j => j.SubmissionId == id && j.Status == JobStatus.Succeeded);

        var running = await client.SubmitJobAsync(new JobSubmission("sleep 60"));
        await client.WaitUntilStatusAsync(running, [JobStatus.Running], s_wait);
        Assert.True(await client.StopJobAsync(running));
        var stopped = await client.WaitUntilStatusAsync(running, timeout: s_wait);
        Assert.Equal(JobStatus.Stopped, stopped.Status);
        Assert.False(await client.StopJobAsync(id)); // already finished: Ray answers stopped=false

        Assert.True(await client.DeleteJobAsync(id));
        Assert.True(await client.DeleteJobAsync(running));
        await Assert.ThrowsAsync<RayJobNotFoundException>(() => client.GetJobInfoAsync(id));
        Assert.DoesNotContain(await client.ListJobsAsync(), j => j.SubmissionId == id || j.SubmissionId == running);
    }

    [Fact]
    public async Task SubmitJobAsync_EnvVarsNotStrings_RefusedLocallyAndOnTheWireAcceptedThenFailedAsRay()
    {
        // Ray's SDK builds RuntimeEnv(**runtime_env) before sending, whose env_vars validation
        // raises TypeError: the typed client refuses it the same way, without sending.
        var local = Assert.Throws<RayRuntimeEnvException>(() => RuntimeEnv.FromJson("""{"env_vars": {"A": 1}}"""));
        Assert.Contains("env_vars", local.Message);

        // A request that carries it anyway (another client, raw REST) is accepted by Ray's head
        // and the job FAILS when the supervisor actor's runtime env is parsed.
        await using var client = Client(handler: new RewriteSubmitHandler(body => body["runtime_env"] = new JsonObject { ["env_vars"] = new JsonObject { ["A"] = 1 } }));
        var id = await client.SubmitJobAsync(new JobSubmission("echo never"));
        var job = await client.WaitUntilStatusAsync(id, timeout: s_wait);

        Assert.Equal(JobStatus.Failed, job.Status);
        Assert.Equal("JOB_SUPERVISOR_ACTOR_START_FAILURE", job.ErrorType);
        Assert.StartsWith($"Failed to start supervisor actor {id}: 'runtime_env['env_vars'] must be of type Dict[str, str], but the value 1 is of type <class 'int'>'", job.Message);
        Assert.DoesNotContain("never", await client.GetJobLogsAsync(id));
    }

    [Fact]
    public async Task SubmitJobAsync_UnknownTopLevelField_ThrowsRayJobsInvalidRequestWithRaysTypeError()
    {
        await using var client = Client(handler: new RewriteSubmitHandler(body => body["priority"] = 5));

        var error = await Assert.ThrowsAsync<RayJobsInvalidRequestException>(() => client.SubmitJobAsync(new JobSubmission("true") { SubmissionId = "unknown-field" }));

        Assert.Equal(400, error.StatusCode);
        Assert.Contains("TypeError: JobSubmitRequest.__init__() got an unexpected keyword argument 'priority'", error.Message);
        await using var plain = Client();
        await Assert.ThrowsAsync<RayJobNotFoundException>(() => plain.GetJobInfoAsync("unknown-field"));
    }

    [Fact]
    public async Task SubmitJobAsync_DuplicateSubmissionId_ThrowsRayJobAlreadyExistsFromRays500()
    {
        await using var client = Client();
        var id = "dup-" + Guid.NewGuid().ToString("N");
        Assert.Equal(id, await client.SubmitJobAsync(new JobSubmission("true") { SubmissionId = id }));

        var error = await Assert.ThrowsAsync<RayJobAlreadyExistsException>(() => client.SubmitJobAsync(new JobSubmission("echo second") { SubmissionId = id }));

        Assert.Equal(id, error.SubmissionId);
        Assert.Equal(500, error.StatusCode);
        Assert.Contains($"Job with submission_id {id} already exists. Please use a different submission_id.", error.ServerMessage);
        Assert.Equal("true", (await client.GetJobInfoAsync(id)).Entrypoint); // the first job is untouched
    }

    [Fact]
    public async Task SubmitJobAsync_MissingWorkingDir_ThrowsRayRuntimeEnvExceptionAndNothingIsSubmitted()
    {
        await using var client = Client();
        var before = (await client.ListJobsAsync()).Count;
        var missing = Path.Combine(fixture.WorkingDir, "no-such-dir");

        var error = await Assert.ThrowsAsync<RayRuntimeEnvException>(() =>
            client.SubmitJobAsync(new JobSubmission("true") { RuntimeEnv = new RuntimeEnv { WorkingDir = missing } }));

        Assert.Contains("no-such-dir", error.Message);
        Assert.Equal(before, (await client.ListJobsAsync()).Count);
    }

    [Fact]
    public async Task UnknownJobId_EveryCall_ThrowsRayJobNotFound()
    {
        await using var client = Client();
        const string id = "raysubmit_doesnotexist0000";

        var info = await Assert.ThrowsAsync<RayJobNotFoundException>(() => client.GetJobInfoAsync(id));
        await Assert.ThrowsAsync<RayJobNotFoundException>(() => client.GetJobLogsAsync(id));
        await Assert.ThrowsAsync<RayJobNotFoundException>(() => client.StopJobAsync(id));
        await Assert.ThrowsAsync<RayJobNotFoundException>(() => client.DeleteJobAsync(id));

        Assert.Equal(id, info.JobId);
        Assert.Equal(404, info.StatusCode);
        Assert.Equal($"Job {id} does not exist", info.ServerMessage);
    }

    [Fact]
    public async Task Requests_MissingOrWrongToken_ThrowRayJobsUnauthorizedWithRaysMessage()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, AuthToken = "right-token" });
        await using var none = Client(server.DashboardAddress);
        await using var wrong = Client(server.DashboardAddress, o => o.Token = "wrong-token");
        await using var right = Client(server.DashboardAddress, o => o.Token = "right-token");

        var missing = await Assert.ThrowsAsync<RayJobsUnauthorizedException>(() => none.ListJobsAsync());
        var refused = await Assert.ThrowsAsync<RayJobsUnauthorizedException>(() => wrong.SubmitJobAsync(new JobSubmission("true")));

        Assert.Equal(401, missing.StatusCode);
        Assert.Equal("Unauthorized: Missing authentication token", missing.ServerMessage);
        Assert.Contains("RAY_AUTH_TOKEN", missing.Message);
        Assert.Equal(403, refused.StatusCode);
        Assert.Equal("Forbidden: Invalid authentication token", refused.ServerMessage);
        Assert.DoesNotContain("wrong-token", refused.Message);
        Assert.Empty(await right.ListJobsAsync()); // the refused submit started nothing
    }

    /// <summary>Rewrites the JSON body of <c>POST /api/jobs/</c> on its way out, to send what the typed client never would.</summary>
    private sealed class RewriteSubmitHandler(Action<JsonObject> rewrite) : DelegatingHandler(new SocketsHttpHandler())
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method == HttpMethod.Post && request.RequestUri!.AbsolutePath.TrimEnd('/') == "/api/jobs" && request.Content is not null)
            {
                var body = JsonNode.Parse(await request.Content.ReadAsStringAsync(cancellationToken))!.AsObject();
                rewrite(body);
                request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
            }

            return await base.SendAsync(request, cancellationToken);
        }
    }

    private sealed class SyncProgress(Action<UploadProgress> report) : IProgress<UploadProgress>
    {
        public void Report(UploadProgress value) => report(value);
    }
}
