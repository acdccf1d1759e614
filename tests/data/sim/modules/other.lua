-- Loaded only inside the process, through the package.path it inherited.
return { hello = function() return "other" end }
