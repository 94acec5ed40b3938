using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace RayClient.Server.RuntimeEnv;

/// <summary>
/// The <c>pip</c> field of runtime envs on the embedded server: one virtual env per distinct
/// requirement list (made with <c>python3 -m venv</c>, reused while the same list comes again),
/// filled by the base interpreter's pip (<c>pip --python</c>), so no pip bootstrap per env.
/// </summary>
internal sealed class VirtualEnvCache
{
    private readonly string _root;
    private readonly string _basePython;
    private readonly ConcurrentDictionary<string, Lazy<Task<string>>> _envs = new(StringComparer.Ordinal);

    public VirtualEnvCache(string root, string basePython)
    {
        _root = root;
        _basePython = basePython;
    }

    /// <summary>Returns the interpreter of a venv holding <paramref name="packages"/>, creating it once.</summary>
    /// <exception cref="RuntimeEnvSetupException">pip failed; the message holds pip's output.</exception>
    public Task<string> GetPythonAsync(IReadOnlyList<string> packages, bool pipCheck, TimeSpan timeout)
    {
        var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n', packages) + (pipCheck ? "\ncheck" : string.Empty))))[..16];
        var lazy = _envs.GetOrAdd(key, k => new Lazy<Task<string>>(() => CreateAsync(k, packages, pipCheck, timeout)));
        var task = lazy.Value;
        if (task.IsFaulted)
        {
            _envs.TryRemove(new KeyValuePair<string, Lazy<Task<string>>>(key, lazy)); // a later request tries again
        }

        return task;
    }

    private async Task<string> CreateAsync(string key, IReadOnlyList<string> packages, bool pipCheck, TimeSpan timeout)
    {
        var directory = Path.Combine(_root, key);
        var python = Path.Combine(directory, "bin", "python");
        var marker = Path.Combine(directory, ".rayclient-ready");
        if (File.Exists(marker))
        {
            return python;
        }

        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true); // a half-made env from an earlier failure
        }

        using var deadline = new CancellationTokenSource(timeout);
        await RunAsync(["-m", "venv", "--without-pip", directory], "python -m venv", deadline.Token).ConfigureAwait(false);
        var install = new List<string> { "-m", "pip", "--python", python, "install", "--no-input", "--disable-pip-version-check" };
        install.AddRange(packages);
        await RunAsync(install, "pip install", deadline.Token).ConfigureAwait(false);
        if (pipCheck)
        {
            await RunAsync(["-m", "pip", "--python", python, "check"], "pip check", deadline.Token).ConfigureAwait(false);
        }

        await File.WriteAllTextAsync(marker, string.Join('\n', packages), CancellationToken.None).ConfigureAwait(false);
        return python;
    }

    private async Task RunAsync(IReadOnlyList<string> arguments, string what, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(_basePython)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info) ?? throw new RuntimeEnvSetupException($"Could not start {_basePython} for {what}.");
        var output = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var error = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new RuntimeEnvSetupException($"{what} did not finish within the runtime env's setup timeout.");
        }

        if (process.ExitCode != 0)
        {
            throw new RuntimeEnvSetupException(
                $"{what} failed (exit code {process.ExitCode}):{Environment.NewLine}{(await output.ConfigureAwait(false)).Trim()}{Environment.NewLine}{(await error.ConfigureAwait(false)).Trim()}");
        }
    }
}

/// <summary>A runtime env could not be set up on the server (reported to clients as Ray's RuntimeEnvSetupError).</summary>
internal sealed class RuntimeEnvSetupException(string message) : Exception(message);
