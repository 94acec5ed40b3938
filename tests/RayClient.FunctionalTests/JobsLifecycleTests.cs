using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Server;

namespace RayClient.FunctionalTests;

public sealed class JobsLifecycleTests
{
    [Fact]
    public async Task Pending_PastTheStartTimeout_FailsWithRaysMessage_OnVirtualTime()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var gate = Path.Combine(Path.GetTempPath(), "rayclient-jobs-gate-" + Guid.NewGuid().ToString("N"));
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions
        {
            NumCpus = 1,
            TimeProvider = time,
            JobStartTimeout = TimeSpan.FromSeconds(900),
        });
        using var http = new JobsHttp(server.DashboardAddress);
        try
        {
            var holder = await http.SubmitAsync(new JsonObject { ["entrypoint"] = $"while [ ! -f {gate} ]; do sleep 0.02; done", ["entrypoint_num_cpus"] = 1 });
            await http.WaitForStatusAsync(holder, "RUNNING");
            var waiting = await http.SubmitAsync(new JsonObject { ["entrypoint"] = "echo never", ["entrypoint_num_cpus"] = 1 });
            Assert.Equal("PENDING", (string?)(await http.GetJobAsync(waiting))["status"]);

            time.Advance(TimeSpan.FromSeconds(899));
            Assert.Equal("PENDING", (string?)(await http.GetJobAsync(waiting))["status"]);
            time.Advance(TimeSpan.FromSeconds(2));

            var failed = await http.WaitForStatusAsync(waiting, "FAILED");
            Assert.Equal("JOB_SUPERVISOR_ACTOR_START_TIMEOUT", (string?)failed["error_type"]);
            Assert.StartsWith("Job supervisor actor failed to start within 900 seconds. This timeout can be configured by setting the environment variable RAY_JOB_START_TIMEOUT_SECONDS.", (string?)failed["message"]);
            Assert.Equal(time.GetUtcNow().ToUnixTimeMilliseconds(), (long)failed["end_time"]!);
        }
        finally
        {
            await File.WriteAllTextAsync(gate, "go");
        }

        File.Delete(gate);
    }

    [Fact]
    public async Task Restart_KillsTheDriverACrashedServerLeftBehind_AndNothingElse()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "rayclient-jobs-orphan", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(dataDir, "jobs"));
        using var orphan = StartInOwnSession("orphan_job");
        using var stranger = StartInOwnSession("someone_else");
        try
        {
            // What a server killed with SIGKILL leaves: a RUNNING record naming the driver's process group.
            foreach (var (id, process) in new[] { ("orphan_job", orphan), ("reused_pid", stranger) })
            {
                await File.WriteAllTextAsync(Path.Combine(dataDir, "jobs", id + ".json"), new JsonObject
                {
                    ["submission_id"] = id, ["entrypoint"] = "sleep 60", ["status"] = "RUNNING", ["start_time"] = 1,
                    ["process_group"] = process.Id,
                }.ToJsonString());
            }

            await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, DataDirectory = dataDir });

            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await orphan.WaitForExitAsync(deadline.Token); // SIGKILLed
            Assert.False(stranger.HasExited); // its pid was recorded, but it is not that job's driver
            using var http = new JobsHttp(server.DashboardAddress);
            Assert.Equal("FAILED", (string?)(await http.GetJobAsync("orphan_job"))["status"]);
            Assert.Equal("FAILED", (string?)(await http.GetJobAsync("reused_pid"))["status"]);
        }
        finally
        {
            foreach (var process in new[] { orphan, stranger })
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                }
            }

            Directory.Delete(dataDir, recursive: true);
        }
    }

    [Fact]
    public async Task Token_MissingIs401_WrongIs403_RightOneInAnyOfRaysPlacesPasses()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, AuthToken = "s3cret" });
        using var http = new HttpClient();
        async Task<(System.Net.HttpStatusCode, string)> GetAsync(string path, string? header = null, string? value = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, server.DashboardAddress + path);
            if (header is not null)
            {
                request.Headers.TryAddWithoutValidation(header, value);
            }

            using var response = await http.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        Assert.Equal((System.Net.HttpStatusCode.Unauthorized, "Unauthorized: Missing authentication token"), await GetAsync("/api/jobs/"));
        Assert.Equal((System.Net.HttpStatusCode.Forbidden, "Forbidden: Invalid authentication token"), await GetAsync("/api/version", "Authorization", "Bearer wrong"));
        Assert.Equal(System.Net.HttpStatusCode.OK, (await GetAsync("/api/version", "Authorization", "Bearer s3cret")).Item1);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await GetAsync("/api/jobs/", "X-Ray-Authorization", "Bearer s3cret")).Item1);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await GetAsync("/api/jobs/", "Cookie", "ray-authentication-token=s3cret")).Item1);
        Assert.Equal((System.Net.HttpStatusCode.OK, "{\"authentication_mode\":\"token\"}"), await GetAsync("/api/authentication_mode"));
    }

    /// <summary>A `sleep` in its own session whose environment names <paramref name="submissionId"/>, as a job's entrypoint has.</summary>
    private static Process StartInOwnSession(string submissionId)
    {
        var start = new ProcessStartInfo("setsid") { ArgumentList = { "sleep", "60" }, UseShellExecute = false };
        start.Environment["RAY_JOB_CONFIG_JSON_ENV_VAR"] = new JsonObject { ["runtime_env"] = new JsonObject(), ["metadata"] = new JsonObject { ["job_submission_id"] = submissionId } }.ToJsonString();
        return Process.Start(start)!;
    }
}
