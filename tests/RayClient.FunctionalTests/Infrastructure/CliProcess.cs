using System.Diagnostics;
using System.Text.RegularExpressions;

namespace RayClient.FunctionalTests.Infrastructure;

/// <summary>A <c>rayclient start --port 0</c> process and what it printed.</summary>
public sealed partial class CliProcess : IAsyncDisposable
{
    private readonly System.Text.StringBuilder _output = new();

    // Job records of this process's server: its own folder, not the user's (--data-dir).
    private readonly string _dataDirectory;

    private CliProcess(Process process, string dataDirectory)
    {
        Process = process;
        _dataDirectory = dataDirectory;
    }

    public Process Process { get; }

    public string Address { get; private set; } = string.Empty;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static async Task<CliProcess> StartAsync(params string[] extraArguments)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "RayClient.Cli.dll"));
        var dataDirectory = Path.Combine(Path.GetTempPath(), "rayclient-test-data-" + Guid.NewGuid().ToString("N"));
        foreach (var argument in (string[])["start", "--port", "0", "--dashboard-port", "0", "--data-dir", dataDirectory, .. extraArguments])
        {
            info.ArgumentList.Add(argument);
        }

        var cli = new CliProcess(Process.Start(info)!, dataDirectory);
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        cli.Process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                listening.TrySetException(new InvalidOperationException($"rayclient start ended before listening: {cli.Output}"));
                return;
            }

            lock (cli._output)
            {
                cli._output.AppendLine(e.Data);
            }

            if (ListeningAt().Match(e.Data) is { Success: true } match)
            {
                listening.TrySetResult(match.Groups[1].Value);
            }
        };
        cli.Process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (cli._output)
                {
                    cli._output.AppendLine(e.Data);
                }
            }
        };
        cli.Process.BeginOutputReadLine();
        cli.Process.BeginErrorReadLine();
        try
        {
            cli.Address = await listening.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch
        {
            await cli.DisposeAsync();
            throw;
        }

        return cli;
    }

    /// <summary>The process's work dir: <c>{temp}/rayclient-server/{pid}-{guid}</c>.</summary>
    public string WorkDirectory()
    {
        var root = Path.Combine(Path.GetTempPath(), "rayclient-server");
        return Assert.Single(Directory.GetDirectories(root, $"{Process.Id}-*"));
    }

    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await Process.WaitForExitAsync().WaitAsync(timeout);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!Process.HasExited)
        {
            Process.Kill(entireProcessTree: true);
            await Process.WaitForExitAsync();
        }

        Process.Dispose();
        if (Directory.Exists(_dataDirectory))
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }

    /// <summary>Resident memory of the process (VmRSS in /proc), in bytes.</summary>
    public long ResidentBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{Process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException("No VmRSS line.");
    }

    [GeneratedRegex(@"listening at (ray://\S+:\d+)\.")]
    private static partial Regex ListeningAt();
}
