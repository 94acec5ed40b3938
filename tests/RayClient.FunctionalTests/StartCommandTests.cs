using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using RayClient.FunctionalTests.Infrastructure;

namespace RayClient.FunctionalTests;

public sealed partial class StartCommandTests
{
    [Fact]
    public async Task Start_CtrlC_StopsGracefullyAndEndsRunningJobs()
    {
        const int signal = 2; // SIGINT, as Ctrl+C sends (SIGTERM takes the same path)
        var dataDir = Path.Combine(Path.GetTempPath(), "rayclient-start-tests", Guid.NewGuid().ToString("N"));
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "RayClient.Cli"))
        {
            ArgumentList = { "start", "--port", "0", "--dashboard-port", "0", "--data-dir", dataDir, "--num-cpus", "1" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        try
        {
            var first = await process.StandardOutput.ReadLineAsync();
            var second = await process.StandardOutput.ReadLineAsync();
            Assert.Contains("Embedded Ray server listening at ray://127.0.0.1:", first);
            var dashboard = DashboardPattern().Match(second ?? string.Empty);
            Assert.True(dashboard.Success, second);
            Assert.Contains(dataDir, second);

            using var http = new JobsHttp(dashboard.Groups[1].Value);
            var pidFile = Path.Combine(dataDir, "job.pid");
            var id = await http.SubmitAsync(new JsonObject { ["entrypoint"] = $"echo $$ > {pidFile}.tmp && mv {pidFile}.tmp {pidFile}; echo running; exec sleep 120" });
            await http.WaitForStatusAsync(id, "RUNNING");
            await Eventually.TrueAsync(() => File.Exists(pidFile), "the job wrote its pid");
            var jobPid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(IsAlive(jobPid));

            Assert.Equal(0, Kill(process.Id, signal));
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await process.WaitForExitAsync(deadline.Token);

            Assert.Equal(0, process.ExitCode);
            Assert.Contains("Stopped.", await process.StandardOutput.ReadToEndAsync());
            Assert.Contains("\"status\":\"RUNNING\"", File.ReadAllText(Directory.GetFiles(Path.Combine(dataDir, "jobs"))[0])); // the next start marks it FAILED
            await Eventually.TrueAsync(() => !IsAlive(jobPid), "the running job's process is ended with the server");
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            Directory.Delete(dataDir, recursive: true);
        }
    }

    /// <summary>True while <paramref name="pid"/> runs (a zombie waiting for its reaper counts as ended).</summary>
    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].FirstOrDefault() is not ('Z' or 'X');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    [GeneratedRegex(@"Ray Jobs API at (http://127\.0\.0\.1:\d+) ")]
    private static partial Regex DashboardPattern();
}
