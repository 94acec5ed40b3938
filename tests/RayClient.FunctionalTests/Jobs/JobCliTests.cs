using System.Diagnostics;
using System.Text.RegularExpressions;
using RayClient.Cli;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Jobs;

namespace RayClient.FunctionalTests.Jobs;

/// <summary>
/// <c>rayclient job</c> end to end: the command tree invoked as the tool runs it, against a Jobs
/// server on loopback (real HTTP and WebSockets). Only the base address ties it to the server.
/// </summary>
public sealed partial class JobCliTests : IAsyncLifetime
{
    private RayJobsTestServer _server = null!;
    private string _workingDir = null!;

    public async Task InitializeAsync()
    {
        _server = await RayJobsTestServer.StartAsync();
        _workingDir = Path.Combine(Path.GetTempPath(), "rayclient-jobcli-wd", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_workingDir);
        await File.WriteAllTextAsync(Path.Combine(_workingDir, "data.txt"), "payload from the working dir\n");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_workingDir, recursive: true);
    }

    private async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        string[] withAddress = args.Contains("--") ? [.. args.TakeWhile(a => a != "--"), "--address", _server.BaseAddress, .. args.SkipWhile(a => a != "--")] : [.. args, "--address", _server.BaseAddress];
        var exit = await CliApp.BuildRootCommand(output, error, TimeSpan.FromMilliseconds(100))
            .Parse(withAddress).InvokeAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return (exit, output.ToString(), error.ToString());
    }

    private static string SubmittedId(string output) => SubmittedRegex().Match(output).Groups[1].Value;

    [GeneratedRegex("Job '([^']+)' submitted successfully")]
    private static partial Regex SubmittedRegex();

    [Fact]
    public async Task JobCommands_SeedFlow_SubmitNoWaitStatusLogsListStopDelete()
    {
        var submit = await RunAsync("job", "submit", "--no-wait", "--", "sh", "-c", "echo started; sleep 30");
        var id = SubmittedId(submit.Output);
        Assert.True(submit.Exit == 0, submit.Error);
        Assert.StartsWith($"Job submission server address: {_server.BaseAddress}{Environment.NewLine}", submit.Output);
        Assert.Contains($"Next steps{Environment.NewLine}  Query the logs of the job:{Environment.NewLine}    rayclient job logs {id}", submit.Output);
        Assert.DoesNotContain("Tailing logs", submit.Output);
        Assert.True(SubmissionIds.IsGenerated(id), id);

        await using (var client = new JobSubmissionClient(_server.BaseAddress))
        {
            await client.WaitUntilStatusAsync(id, [JobStatus.Running], TimeSpan.FromSeconds(30));
            await Eventually.TrueAsync(async () => (await client.GetJobLogsAsync(id)).Contains("started"), "the job printed");
        }

        var status = await RunAsync("job", "status", id);
        Assert.Equal(0, status.Exit);
        Assert.Contains($"Status for job '{id}': RUNNING{Environment.NewLine}Status message: Job is currently running.", status.Output);

        var logs = await RunAsync("job", "logs", id);
        Assert.Contains($"Running entrypoint for job {id}: sh -c 'echo started; sleep 30'\nstarted\n", logs.Output);

        var list = await RunAsync("job", "list");
        Assert.Matches($"(?m)^{id}\\s+-\\s+SUBMISSION\\s+RUNNING\\s", list.Output);

        var deleteRunning = await RunAsync("job", "delete", id);
        Assert.Equal(1, deleteRunning.Exit);
        Assert.StartsWith("error: ", deleteRunning.Error);
        Assert.Contains("non-terminal state RUNNING", deleteRunning.Error);

        var stop = await RunAsync("job", "stop", id);
        Assert.Equal(0, stop.Exit);
        Assert.Contains($"Attempting to stop job '{id}'{Environment.NewLine}Waiting for job '{id}' to exit (disable with --no-wait):", stop.Output);
        Assert.EndsWith($"Job '{id}' was stopped{Environment.NewLine}", stop.Output);

        var delete = await RunAsync("job", "delete", id);
        Assert.Equal(0, delete.Exit);
        Assert.Contains($"Job '{id}' deleted successfully", delete.Output);

        var gone = await RunAsync("job", "status", id);
        Assert.Equal(1, gone.Exit);
        Assert.Equal($"error: Job '{id}' does not exist (HTTP 404).{Environment.NewLine}", gone.Error);
    }

    [Fact]
    public async Task Submit_WorkingDirWithoutNoWait_UploadsStreamsLogsAndEndsWithTheSucceededBanner()
    {
        var result = await RunAsync("job", "submit", "--working-dir", _workingDir, "--submission-id", "cli-wd", "--", "cat", "data.txt");

        Assert.True(result.Exit == 0, result.Error);
        Assert.Matches("Uploading package gcs://_ray_pkg_[0-9a-f]{16}\\.zip \\(0\\.0 MiB\\) for working_dir ", result.Output);
        var tail = result.Output[result.Output.IndexOf("Tailing logs until the job exits (disable with --no-wait):", StringComparison.Ordinal)..];
        Assert.Contains("payload from the working dir\n", tail);
        var n = Environment.NewLine;
        var dashes = new string('-', "Job 'cli-wd' succeeded".Length);
        Assert.EndsWith($"{n}{dashes}{n}Job 'cli-wd' succeeded{n}{dashes}{n}{n}", result.Output);
    }

    [Fact]
    public async Task Submit_FailingJob_ExitsOneWithTheFailedBannerAndStatusMessage()
    {
        var result = await RunAsync("job", "submit", "--", "sh", "-c", "echo boom >&2; exit 4");

        Assert.Equal(1, result.Exit);
        Assert.Contains("boom\n", result.Output);
        Assert.Contains($"Job '{SubmittedId(result.Output)}' failed", result.Output);
        Assert.Contains("Status message: Job entrypoint command failed with exit code 4", result.Output);
        Assert.Equal(string.Empty, result.Error);
    }

    [Fact]
    public async Task Submit_ArgumentsWithSpacesAndDollars_AreShellQuotedAsRaysShlexJoin()
    {
        var result = await RunAsync("job", "submit", "--runtime-env-json", """{"env_vars": {"X": "from env"}}""", "--", "echo", "a  b", "$X", "it's");

        Assert.True(result.Exit == 0, result.Error);
        await using var client = new JobSubmissionClient(_server.BaseAddress);
        var info = await client.GetJobInfoAsync(SubmittedId(result.Output));
        Assert.Equal("echo 'a  b' '$X' 'it'\"'\"'s'", info.Entrypoint);
        Assert.Contains("a  b $X it's\n", result.Output);
    }

    [Fact]
    public async Task Submit_EntrypointResourcesAndMetadata_ReachTheServer()
    {
        var result = await RunAsync("job", "submit", "--no-wait", "--metadata-json", """{"owner": "cli"}""", "--entrypoint-num-cpus", "0.5",
            "--entrypoint-memory", "1048576", "--entrypoint-resources", """{"custom": 2}""", "--", "true");

        Assert.True(result.Exit == 0, result.Error);
        await using var client = new JobSubmissionClient(_server.BaseAddress);
        var id = SubmittedId(result.Output);
        var info = await client.GetJobInfoAsync(id);
        Assert.Equal("cli", info.Metadata!["owner"]);
        var sent = _server.SubmittedRequest(id)!;
        Assert.Equal(0.5, sent["entrypoint_num_cpus"]!.GetValue<double>());
        Assert.Equal(1048576, sent["entrypoint_memory"]!.GetValue<long>());
        Assert.Equal(2, sent["entrypoint_resources"]!["custom"]!.GetValue<double>());
    }

    [Theory]
    [InlineData("""{"env_vars": {"A": 1}}""", "env_vars")]
    [InlineData("""[1, 2]""", "--runtime-env-json must be a JSON object")]
    [InlineData("""{"working_dir": 3}""", "working_dir")]
    public async Task Submit_BadRuntimeEnvJson_OneErrorLineAndExitOne(string json, string expected)
    {
        var result = await RunAsync("job", "submit", "--runtime-env-json", json, "--", "true");

        Assert.Equal(1, result.Exit);
        Assert.StartsWith("error: ", result.Error);
        Assert.Contains(expected, result.Error);
        Assert.Single(result.Error.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain(_server.Requests, r => r.Method == "POST");
    }

    [Fact]
    public async Task Submit_RuntimeEnvYamlAndWorkingDirOverride_WarnsAndUsesTheFlag()
    {
        var yaml = Path.Combine(_workingDir, "env.yaml");
        await File.WriteAllTextAsync(yaml, "working_dir: /does/not/exist\nenv_vars:\n  GREETING: yaml says hi\n");

        var result = await RunAsync("job", "submit", "--runtime-env", yaml, "--working-dir", _workingDir, "--", "sh", "-c", "echo $GREETING; cat data.txt");

        Assert.True(result.Exit == 0, result.Error);
        Assert.Equal($"warning: Overriding runtime_env working_dir with --working-dir option{Environment.NewLine}", result.Error);
        Assert.Contains("yaml says hi\npayload from the working dir\n", result.Output);
    }

    [Fact]
    public async Task Submit_RuntimeEnvYamlRayCannotSend_OneErrorLineWithFileLineAndColumn()
    {
        // PyYAML (yaml.safe_load in Ray's parse_runtime_env_args) makes a date of this, which json.dumps refuses.
        var yaml = Path.Combine(_workingDir, "dated.yaml");
        await File.WriteAllTextAsync(yaml, "env_vars:\n  SINCE: 2024-01-02\n");

        var result = await RunAsync("job", "submit", "--runtime-env", yaml, "--", "true");

        Assert.Equal(1, result.Exit);
        Assert.Single(result.Error.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"error: Failed to read the runtime env file '{yaml}': The runtime env is not valid YAML: line 2, column 10: '2024-01-02' is a YAML 1.1 timestamp", result.Error);
        Assert.DoesNotContain(_server.Requests, r => r.Method == "POST");
    }

    [Theory]
    [InlineData("ray://head:10001", "http://head:8265")]
    [InlineData("grpc://head", "http://<head-node>:8265")]
    public async Task Commands_RayClientAddress_OneErrorLineNamingTheDashboardPort(string address, string expected)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await CliApp.BuildRootCommand(output, error, null).Parse(["job", "list", "--address", address]).InvokeAsync();

        Assert.Equal(1, exit);
        Assert.StartsWith("error: ", error.ToString());
        Assert.Contains(expected, error.ToString());
    }

    [Fact]
    public async Task Commands_BadHeaders_OneErrorLine()
    {
        var result = await RunAsync("job", "list", "--headers", "not json");

        Assert.Equal(1, result.Exit);
        Assert.StartsWith("error: Failed to parse --headers as JSON", result.Error);
    }

    /// <summary>
    /// Runs the tool as its own process with these environment variables set for real (the tool
    /// and its Jobs client read the process environment, as for any user); the Ray variables of
    /// this machine are removed first.
    /// </summary>
    private static async Task<(int Exit, string Output, string Error)> RunProcessAsync(Dictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "RayClient.Cli.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var name in TestEnvironment.RayVariables)
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        return (process.ExitCode, await output, await error);
    }

    [Fact]
    public async Task Commands_HeadersFromRayJobHeaders_AreSent()
    {
        var result = await RunProcessAsync(
            new() { ["RAY_JOB_HEADERS"] = """{"X-Team": "ml"}""" },
            "job", "list", "--format", "json", "--address", _server.BaseAddress);

        Assert.True(result.Exit == 0, result.Error);
        Assert.Contains("[]", result.Output);
        Assert.NotEmpty(_server.Requests);
        Assert.All(_server.Requests, r => Assert.Equal("ml", r.Headers["X-Team"]));
    }

    [Fact]
    public async Task Commands_RayApiServerAddressInTheEnvironment_OverridesTheFlagAsInRay()
    {
        // Ray's get_address_for_submission_client: RAY_API_SERVER_ADDRESS wins over --address. The
        // Jobs client reads it from the tool's real environment (no test hook in between).
        var result = await RunProcessAsync(
            new() { ["RAY_API_SERVER_ADDRESS"] = _server.BaseAddress },
            "job", "list", "--address", "http://127.0.0.1:1");

        Assert.True(result.Exit == 0, result.Error);
        Assert.StartsWith($"Job submission server address: {_server.BaseAddress.TrimEnd('/')}", result.Output);
        Assert.Contains(_server.Requests, r => r.Method == "GET" && r.Path.StartsWith("/api/jobs", StringComparison.Ordinal));
    }

    [Fact]
    public async Task List_FormatJson_PrintsTheJobsAsTheRestApiNamesThem()
    {
        await using var client = new JobSubmissionClient(_server.BaseAddress);
        var id = await client.SubmitJobAsync(new JobSubmission("echo listed") { Metadata = new Dictionary<string, string> { ["owner"] = "cli" } });
        Assert.Equal(JobStatus.Succeeded, (await client.WaitUntilStatusAsync(id, timeout: TimeSpan.FromSeconds(60))).Status);

        var result = await RunAsync("job", "list", "--format", "json");

        Assert.True(result.Exit == 0, result.Error);
        var json = result.Output[result.Output.IndexOf('[', StringComparison.Ordinal)..];
        var jobs = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsArray();
        var job = Assert.Single(jobs, j => (string?)j!["submission_id"] == id)!.AsObject();
        Assert.Equal("SUBMISSION", (string?)job["type"]);
        Assert.Equal("SUCCEEDED", (string?)job["status"]);
        Assert.Equal("echo listed", (string?)job["entrypoint"]);
        Assert.Equal("cli", (string?)job["metadata"]!["owner"]);
        Assert.True(job["start_time"]!.GetValue<long>() > 0);
        Assert.DoesNotContain(job, p => p.Value is null); // nulls left out, as the REST API's JSON
    }

    [Fact]
    public async Task LogsFollow_CtrlC_LeavesTheJobRunningAndSaysSo()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return;
        }

        await using var client = new JobSubmissionClient(_server.BaseAddress);
        var id = await client.SubmitJobAsync(new JobSubmission("echo following; sleep 60"));
        var tool = Path.Combine(AppContext.BaseDirectory, "RayClient.Cli");
        var start = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "job", "logs", "--follow", id, "--address", _server.BaseAddress })
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment.Remove("RAY_ADDRESS");
        start.Environment.Remove("RAY_API_SERVER_ADDRESS");
        using var process = Process.Start(start)!;
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var text = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            lock (text)
            {
                text.AppendLine(e.Data);
                if (e.Data == "following")
                {
                    seen.TrySetResult();
                }
            }
        };
        process.BeginOutputReadLine();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await seen.Task.WaitAsync(TimeSpan.FromSeconds(30));
            using (var kill = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) // SIGINT, as Ctrl+C sends
            {
                await kill.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
                Assert.Equal(0, kill.ExitCode);
            }

            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }

        lock (text)
        {
            Assert.True(process.ExitCode == 130, $"exit {process.ExitCode}: {text}");
            Assert.True(text.ToString().Contains($"Stopped following the logs of job '{id}'. The job keeps running; stop it with: rayclient job stop {id}", StringComparison.Ordinal), text.ToString());
        }

        Assert.Equal(string.Empty, await stderr);
        Assert.Equal(JobStatus.Running, await client.GetJobStatusAsync(id));
    }
}
