using System.Diagnostics;
using System.Text;

namespace RayClient.Tests.Serialization;

/// <summary>
/// Runs scripts in the real CPython interpreter. <c>python3</c> on PATH may be a slow launcher
/// (pyenv), so its <c>sys.executable</c> is resolved once and used for every run. Each script gets
/// <see cref="PythonHarness.Prelude"/> prepended (stand-in Ray modules, helpers).
/// </summary>
internal static class PythonRunner
{
    private static readonly Lazy<string> Interpreter = new(ResolveInterpreter, LazyThreadSafetyMode.ExecutionAndPublication);

    public static string Run(string script, string? input = null, int timeoutSeconds = 180)
    {
        var path = Path.Combine(Path.GetTempPath(), $"rayclient-pickle-{Guid.NewGuid():N}.py");
        File.WriteAllText(path, PythonHarness.Prelude + "\n" + script, new UTF8Encoding(false));
        try
        {
            var (exitCode, stdout, stderr) = Execute(Interpreter.Value, ["-X", "utf8", path], input, timeoutSeconds);
            if (exitCode != 0)
            {
                throw new InvalidOperationException($"python3 failed with exit code {exitCode}:{Environment.NewLine}{stderr}");
            }

            return stdout;
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string ResolveInterpreter()
    {
        var (exitCode, stdout, stderr) = Execute("python3", ["-c", "import sys;print(sys.executable)"], null, 120);
        var path = stdout.Trim();
        if (exitCode != 0 || path.Length == 0)
        {
            throw new InvalidOperationException($"python3 is needed by the pickle tests and could not be started: {stderr}");
        }

        return path;
    }

    private static (int ExitCode, string Stdout, string Stderr) Execute(string file, string[] arguments, string? input, int timeoutSeconds)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            StandardInputEncoding = new UTF8Encoding(false),
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["PYTHONIOENCODING"] = "utf-8";
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            process.StandardInput.Write(input);
        }

        process.StandardInput.Close();
        if (!process.WaitForExit(TimeSpan.FromSeconds(timeoutSeconds)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} did not finish within {timeoutSeconds} s");
        }

        process.WaitForExit();
        return (process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
    }
}
