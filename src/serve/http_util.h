// Private helpers of the HTTP front end shared by its route files: writing JSON and error
// answers, and the generation route itself (generation_route.cpp).
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "difftx/serve/api_error.h"
#include "difftx/serve/http_server.h"

namespace difftx::serve {

void send_json(httplib::Response& res, int status, const nlohmann::json& body);
void send_error(httplib::Response& res, const ApiError& error);

// POST /v1/completions and /v1/chat/completions once the model is ready.
void handle_generation(Endpoint endpoint, const httplib::Request& req, httplib::Response& res,
                       const ModelEndpoint& model);

}  // namespace difftx::serve
