-- Argo CD health check for modelwerk.io/v1alpha1 TrainingRun (one reproducible training run).
--
--   status not written yet, or status.observedGeneration behind metadata.generation
--                                   -> Progressing ("Waiting for the operator ...")
--   phase Succeeded                 -> Healthy ("Registered as version N of Model M")
--   phase Rejected                  -> Healthy, with the gate's verdict as the message.
--       A rejected run did its job: it trained, reported, and the evaluation gate refused a
--       model that was not good enough, so the registry and what is served are untouched.
--       Nothing in the cluster is broken or can be repaired (the spec is immutable; the remedy
--       is a better model in a new run), so Degraded would turn the Application red for an
--       expected outcome. Failed, by contrast, means something broke.
--       To treat a rejection as a fault, override this check in argocd-cm.
--   phase Failed                    -> Degraded (Job failed, report invalid, Job refused by
--                                      admission, Model deleted, invalid spec)
--   spec.suspend true, not finished -> Suspended
--   condition Running=False with a container waiting reason that never clears by itself
--   (ImagePullBackOff, ErrImagePull, CrashLoopBackOff, ...)  -> Degraded
--   condition Accepted=False: ModelNotFound -> Progressing (the run starts once the Model
--                                      exists, e.g. later in the same sync); else -> Degraded
--   phase Pending or Running        -> Progressing
--   any other phase                 -> Unknown
--
-- Only Lua 5.1 base, string and table functions: Argo CD runs this in gopher-lua.

local STUCK = {
  ImagePullBackOff = true,
  ErrImagePull = true,
  InvalidImageName = true,
  CreateContainerConfigError = true,
  CreateContainerError = true,
  CrashLoopBackOff = true,
  RunContainerError = true,
}

local function condition(obj, conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function reasonMessage(c, fallback)
  if c == nil then
    return fallback
  end
  if c.reason ~= nil and c.message ~= nil then
    return c.reason .. ": " .. c.message
  end
  return c.message or c.reason or fallback
end

local hs = {}
local status = obj.status
local spec = obj.spec or {}

if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the TrainingRun"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation ..
    " (observed " .. tostring(status.observedGeneration or "none") .. ")"
  return hs
end

if status.phase == "Succeeded" then
  hs.status = "Healthy"
  if status.modelVersion ~= nil then
    hs.message = "Registered as version " .. status.modelVersion .. " of Model " .. tostring(spec.model)
  else
    local registered = condition(obj, "Registered")
    if registered ~= nil and registered.message ~= nil then
      hs.message = "Succeeded: " .. registered.message
    else
      hs.message = "Succeeded"
    end
  end
  return hs
end

if status.phase == "Rejected" then
  local verdict = nil
  if status.evaluation ~= nil then
    verdict = status.evaluation.message
  end
  if verdict == nil then
    local evaluated = condition(obj, "Evaluated")
    if evaluated ~= nil then
      verdict = evaluated.message
    end
  end
  hs.status = "Healthy"
  hs.message = "Rejected by the evaluation gate: " .. (verdict or "the result was not good enough")
  return hs
end

if status.phase == "Failed" then
  hs.status = "Degraded"
  local failed = condition(obj, "Failed")
  if failed ~= nil and failed.status == "True" then
    hs.message = reasonMessage(failed, "the run failed")
    return hs
  end
  for _, t in ipairs({"Accepted", "JobCreated", "Evaluated", "Registered"}) do
    local c = condition(obj, t)
    if c ~= nil and c.status == "False" then
      hs.message = reasonMessage(c, "the run failed")
      return hs
    end
  end
  hs.message = "The run failed"
  return hs
end

if spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: the run's Job is suspended"
  return hs
end

local running = condition(obj, "Running")
if running ~= nil and running.status == "False" and running.reason ~= nil and STUCK[running.reason] then
  hs.status = "Degraded"
  hs.message = reasonMessage(running, running.reason)
  return hs
end

local accepted = condition(obj, "Accepted")
if accepted ~= nil and accepted.status == "False" then
  if accepted.reason == "ModelNotFound" then
    hs.status = "Progressing"
    hs.message = accepted.message or "Waiting for the Model"
  else
    hs.status = "Degraded"
    hs.message = reasonMessage(accepted, "the run is not accepted")
  end
  return hs
end

if status.phase == "Pending" or status.phase == "Running" then
  hs.status = "Progressing"
  if running ~= nil and running.message ~= nil then
    hs.message = running.message
  else
    hs.message = "TrainingRun is " .. status.phase
  end
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown TrainingRun phase " .. tostring(status.phase)
return hs
